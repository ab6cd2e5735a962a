"""The EC2 provider against moto's server mode: real HTTP on loopback, real boto3.

What moto does and does not do (checked with moto 5.2.5, boto3 1.44):

- CreateFleet ``instant`` launches at once and tags instances from
  ``TagSpecifications``; of several overrides it always takes the *first*
  (it orders by spot price, and our overrides carry none);
- it ignores ``ClientToken``: a repeated CreateFleet launches again (shown
  below), so our own look-up by claim tag is what keeps a launch idempotent;
- it never answers with capacity or throttling errors: a thin fault layer in
  this test (botocore ``before-send``/``after-call`` hooks, see
  ``moto_server.py``) supplies them;
- TerminateInstances with one unknown id fails the whole call with
  ``InvalidInstanceID.NotFound`` and terminates nothing, as EC2 documents.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from spotpack.cloud.aws import AwsProvider
from spotpack.cloud.base import (
    CLAIM_TAG,
    CLUSTER_TAG,
    InsufficientCapacity,
    LaunchRefused,
    LaunchRequest,
    Offering,
    OfferingCache,
    Throttled,
    owned_without_claims,
)
from spotpack.cloud.ec2_fleet import narrowed_token
from spotpack.cloud.fake import SimulatedCrash
from spotpack.errors import ConfigError
from tests.integration.moto_server import (
    REGION,
    Moto,
    Network,
    answer,
    canned_response,
    ec2_error,
    fake_session,
    isolate_aws_env,
    make_network,
    rewrite_parsed,
    running_moto,
)

pytestmark = pytest.mark.integration

ZONE_A, ZONE_B = "us-east-1a", "us-east-1b"
CANDIDATES = (("m5.large", ZONE_A), ("c5.large", ZONE_B), ("m5.xlarge", ZONE_A))


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with running_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def network(moto: Moto) -> Network:
    return make_network(moto.url, (ZONE_A, ZONE_B), 0)


@pytest.fixture
def cluster() -> str:
    """A cluster name of its own per test: tests never see each other's instances."""
    return f"test-{uuid.uuid4().hex[:8]}"


def _provider(moto: Moto, network: Network, cluster: str, **kwargs: Any) -> AwsProvider:
    return AwsProvider(
        REGION,
        cluster,
        subnet_by_zone=network.subnets,
        endpoint_url=moto.url,
        session=fake_session(),
        image_id=network.image_id,
        readback_delay=0.01,
        **kwargs,
    )


def _record(provider: AwsProvider, operation: str) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` call the provider makes."""
    seen: list[dict[str, Any]] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        seen.append(dict(params))

    provider.client.meta.events.register(f"before-parameter-build.ec2.{operation}", hook)
    return seen


def _tagged(moto: Moto, **tags: str) -> list[dict[str, Any]]:
    """Live instances with all these tags, read directly (not through the provider)."""
    ec2 = fake_session().client("ec2", endpoint_url=moto.url)
    filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[*filters, {"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


def _claimed(moto: Moto, cluster: str, claim: str) -> list[dict[str, Any]]:
    return _tagged(moto, **{CLUSTER_TAG: cluster, CLAIM_TAG: claim})


def _request(cluster: str, claim: str = "claim-1", capacity: Any = "spot") -> LaunchRequest:
    return LaunchRequest.for_claim(claim, CANDIDATES, capacity, scope=cluster, tags={"team": "ml"})


# --- launch, find, idempotency ---------------------------------------------------------------


def test_instant_fleet_with_three_types_launches_one_tagged_instance(
    moto: Moto, network: Network, cluster: str
) -> None:
    provider = _provider(moto, network, cluster)
    fleets = _record(provider, "CreateFleet")

    instance = provider.launch(_request(cluster))

    assert len(fleets) == 1
    params = fleets[0]
    assert params["Type"] == "instant"
    assert params["ClientToken"] == _request(cluster).client_token
    assert len(params["ClientToken"]) <= 64
    assert params["SpotOptions"] == {"AllocationStrategy": "price-capacity-optimized"}
    assert "OnDemandOptions" not in params
    assert params["TargetCapacitySpecification"] == {
        "TotalTargetCapacity": 1,
        "DefaultTargetCapacityType": "spot",
    }
    overrides = params["LaunchTemplateConfigs"][0]["Overrides"]
    assert [(o["InstanceType"], o["SubnetId"]) for o in overrides] == [
        (t, network.subnets[z]) for t, z in CANDIDATES
    ]
    assert {s["ResourceType"] for s in params["TagSpecifications"]} == {"instance", "fleet"}

    # moto takes the first override; the read-back filled in zone, lifecycle and DNS.
    assert (instance.instance_type, instance.zone, instance.capacity) == (
        "m5.large",
        ZONE_A,
        "spot",
    )
    assert instance.claim_id == "claim-1"
    assert instance.state in ("pending", "running")
    assert instance.private_dns and instance.node_name == instance.private_dns

    tagged = _claimed(moto, cluster, "claim-1")
    assert [i["InstanceId"] for i in tagged] == [instance.instance_id]
    tags = {t["Key"]: t["Value"] for t in tagged[0]["Tags"]}
    assert tags[CLUSTER_TAG] == cluster
    assert tags["Name"] == f"{cluster}/claim-1"
    assert tags["team"] == "ml"

    found = provider.find("claim-1")
    assert found is not None and found.instance_id == instance.instance_id
    assert provider.find("claim-unknown") is None


def test_a_second_launch_of_the_same_claim_launches_nothing(
    moto: Moto, network: Network, cluster: str
) -> None:
    provider = _provider(moto, network, cluster)
    fleets = _record(provider, "CreateFleet")
    first = provider.launch(_request(cluster))
    again = provider.launch(_request(cluster))
    assert again.instance_id == first.instance_id
    assert len(fleets) == 1  # found by its claim tag: CreateFleet was not called again
    assert len(_claimed(moto, cluster, "claim-1")) == 1


def test_moto_ignores_the_client_token(moto: Moto, network: Network, cluster: str) -> None:
    """The quirk our look-up works around: the same token launches twice in moto."""
    provider = _provider(moto, network, cluster)
    template = provider.ensure_launch_template()
    ec2 = fake_session().client("ec2", endpoint_url=moto.url)
    tag = [{"ResourceType": "instance", "Tags": [{"Key": "quirk", "Value": cluster}]}]
    for _ in range(2):
        ec2.create_fleet(
            Type="instant",
            ClientToken=f"same-token-{cluster}",
            LaunchTemplateConfigs=[
                {
                    "LaunchTemplateSpecification": {"LaunchTemplateId": template, "Version": "1"},
                    "Overrides": [
                        {"InstanceType": "m5.large", "SubnetId": network.subnets[ZONE_A]}
                    ],
                }
            ],
            TargetCapacitySpecification={
                "TotalTargetCapacity": 1,
                "DefaultTargetCapacityType": "on-demand",
            },
            TagSpecifications=tag,
        )
    assert len(_tagged(moto, quirk=cluster)) == 2  # real EC2 would return the first fleet


def test_on_demand_uses_lowest_price(moto: Moto, network: Network, cluster: str) -> None:
    provider = _provider(moto, network, cluster)
    fleets = _record(provider, "CreateFleet")
    instance = provider.launch(_request(cluster, "claim-od", "on-demand"))
    assert instance.capacity == "on-demand"
    assert fleets[0]["OnDemandOptions"] == {"AllocationStrategy": "lowest-price"}
    assert "SpotOptions" not in fleets[0]


def test_list_owned_sees_this_clusters_instances_only(
    moto: Moto, network: Network, cluster: str
) -> None:
    mine = _provider(moto, network, cluster)
    theirs = _provider(moto, network, f"{cluster}-other")
    a = mine.launch(_request(cluster, "claim-a"))
    b = mine.launch(_request(cluster, "claim-b", "on-demand"))
    other = theirs.launch(_request(f"{cluster}-other", "claim-a"))
    ec2 = fake_session().client("ec2", endpoint_url=moto.url)
    ec2.run_instances(ImageId=network.image_id, MinCount=1, MaxCount=1, InstanceType="t3.micro")

    owned = mine.list_owned()
    assert sorted(i.instance_id for i in owned) == sorted([a.instance_id, b.instance_id])
    assert {i.claim_id for i in owned} == {"claim-a", "claim-b"}
    # The same claim id in another cluster is another instance, found by that cluster only.
    found = mine.find("claim-a")
    assert found is not None and found.instance_id == a.instance_id != other.instance_id


def test_terminate_is_idempotent_and_skips_unknown_ids(
    moto: Moto, network: Network, cluster: str
) -> None:
    provider = _provider(moto, network, cluster)
    keep = provider.launch(_request(cluster, "claim-keep"))
    gone = provider.launch(_request(cluster, "claim-gone"))

    # One unknown id makes EC2 (and moto) refuse the whole call...
    ec2 = fake_session().client("ec2", endpoint_url=moto.url)
    with pytest.raises(ClientError) as info:
        ec2.terminate_instances(InstanceIds=[gone.instance_id, "i-0123456789abcdef0"])
    assert info.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
    assert provider.find("claim-gone") is not None

    # ...the provider drops the unknown id and terminates the rest.
    provider.terminate([gone.instance_id, "i-0123456789abcdef0"])
    assert provider.find("claim-gone") is None
    assert [i.instance_id for i in provider.list_owned()] == [keep.instance_id]
    provider.terminate([gone.instance_id])  # already terminated: no error
    provider.terminate(["i-00000000deadbeef"])  # never existed: no error
    provider.terminate([])
    # moto answers a malformed id with NotFound too (EC2: InvalidInstanceID.Malformed).
    provider.terminate(["not-an-instance-id"])


def test_the_launch_template_is_created_once_and_reused(
    moto: Moto, network: Network, cluster: str
) -> None:
    first = _provider(moto, network, cluster)
    template_id = first.ensure_launch_template()
    second = _provider(moto, network, cluster)
    assert second.ensure_launch_template() == template_id
    ec2 = fake_session().client("ec2", endpoint_url=moto.url)
    templates = ec2.describe_launch_templates(LaunchTemplateNames=[f"spotpack-{cluster}"])
    assert [t["LaunchTemplateId"] for t in templates["LaunchTemplates"]] == [template_id]

    # A configured template is used by name, and never created.
    named = _provider(moto, network, cluster, launch_template=f"spotpack-{cluster}")
    fleets = _record(named, "CreateFleet")
    named.launch(_request(cluster, "claim-named"))
    assert fleets[0]["LaunchTemplateConfigs"][0]["LaunchTemplateSpecification"] == {
        "LaunchTemplateName": f"spotpack-{cluster}",
        "Version": "$Default",
    }


def test_a_new_instance_not_yet_visible_is_read_back_after_a_retry(
    moto: Moto, network: Network, cluster: str
) -> None:
    """EC2 is eventually consistent: DescribeInstances by id may not know a new instance."""
    provider = _provider(moto, network, cluster)
    faults: list[str] = []

    def not_yet(request: Any, **_: Any) -> Any:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        if "InstanceId.1" in body and not faults:
            faults.append(body)
            error = ec2_error("InvalidInstanceID.NotFound", "The instance ID does not exist")
            return answer(request, 400, error)
        return None

    provider.client.meta.events.register("before-send.ec2.DescribeInstances", not_yet)
    instance = provider.launch(_request(cluster))
    assert len(faults) == 1
    assert instance.private_dns  # the second read-back found it


# --- faults: capacity, throttling, refusal ---------------------------------------------------


def _fleet_errors_body(errors: list[tuple[str, str, str]], template: str) -> bytes:
    items = "".join(
        "<item><launchTemplateAndOverrides>"
        f"<launchTemplateSpecification><launchTemplateId>{template}</launchTemplateId>"
        "<version>1</version></launchTemplateSpecification>"
        f"<overrides><instanceType>{itype}</instanceType><subnetId>{subnet}</subnetId></overrides>"
        "</launchTemplateAndOverrides><lifecycle>spot</lifecycle>"
        f"<errorCode>{code}</errorCode><errorMessage>There is no Spot capacity "
        "available that matches your request.</errorMessage></item>"
        for itype, subnet, code in errors
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<CreateFleetResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        "<requestId>fault-layer</requestId><fleetId>fleet-fault</fleetId>"
        f"<errorSet>{items}</errorSet><fleetInstanceSet/></CreateFleetResponse>"
    ).encode()


def test_capacity_errors_in_the_fleet_answer_name_the_offerings(
    moto: Moto, network: Network, cluster: str
) -> None:
    cache = OfferingCache()
    provider = _provider(moto, network, cluster, offering_cache=cache)
    template = provider.ensure_launch_template()
    body = _fleet_errors_body(
        [
            ("m5.large", network.subnets[ZONE_A], "InsufficientInstanceCapacity"),
            ("c5.large", network.subnets[ZONE_B], "UnfulfillableCapacity"),
            ("m5.xlarge", network.subnets[ZONE_A], "InsufficientInstanceCapacity"),
        ],
        template,
    )
    calls = canned_response(provider.client, "CreateFleet", 200, body)

    with pytest.raises(InsufficientCapacity) as info:
        provider.launch(_request(cluster))
    error = info.value
    assert error.retryable
    assert error.code == "InsufficientInstanceCapacity"
    assert error.offerings == (
        Offering("m5.large", ZONE_A, "spot"),
        Offering("c5.large", ZONE_B, "spot"),
        Offering("m5.xlarge", ZONE_A, "spot"),
    )
    assert "m5.large/us-east-1a/spot" in str(error)
    assert provider.list_owned() == []
    assert cache.blocked("c5.large", ZONE_B, "spot")
    assert cache.reason("c5.large", ZONE_B, "spot") == "UnfulfillableCapacity"

    # Within the TTL the same candidates are refused without another CreateFleet.
    with pytest.raises(InsufficientCapacity) as again:
        provider.launch(_request(cluster))
    assert again.value.code == "RecentlyUnavailable"
    assert len(calls) == 1


def test_a_partial_capacity_error_still_launches_and_is_remembered(
    moto: Moto, network: Network, cluster: str
) -> None:
    cache = OfferingCache()
    provider = _provider(moto, network, cluster, offering_cache=cache)

    def add_error(parsed: dict[str, Any]) -> None:
        parsed.setdefault("Errors", []).append(
            {
                "LaunchTemplateAndOverrides": {
                    "Overrides": {"InstanceType": "c5.large", "SubnetId": network.subnets[ZONE_B]}
                },
                "Lifecycle": "spot",
                "ErrorCode": "InsufficientInstanceCapacity",
                "ErrorMessage": "We currently do not have sufficient c5.large capacity.",
            }
        )

    rewrite_parsed(provider.client, "CreateFleet", add_error)
    instance = provider.launch(_request(cluster))
    assert instance.instance_type == "m5.large"
    assert cache.snapshot() == {
        Offering("c5.large", ZONE_B, "spot"): "InsufficientInstanceCapacity"
    }

    # The next claim's fleet leaves the exhausted pool out, under a token of its own
    # (the full list's token with other parameters would be IdempotentParameterMismatch).
    fleets = _record(provider, "CreateFleet")
    req = _request(cluster, "claim-2")
    provider.launch(req)
    overrides = fleets[0]["LaunchTemplateConfigs"][0]["Overrides"]
    assert [o["InstanceType"] for o in overrides] == ["m5.large", "m5.xlarge"]
    remaining = (CANDIDATES[0], CANDIDATES[2])
    assert fleets[0]["ClientToken"] == narrowed_token(req.client_token, remaining)
    assert fleets[0]["ClientToken"] != req.client_token


def test_throttling_is_throttled_after_bounded_retries(
    moto: Moto, network: Network, cluster: str
) -> None:
    provider = _provider(moto, network, cluster, max_attempts=2)
    provider.ensure_launch_template()
    body = ec2_error("RequestLimitExceeded", "Request limit exceeded.")
    calls = canned_response(provider.client, "CreateFleet", 503, body)
    with pytest.raises(Throttled) as info:
        provider.launch(_request(cluster))
    assert (info.value.code, info.value.retryable) == ("RequestLimitExceeded", True)
    assert len(calls) == 2  # botocore's standard mode retried once, as configured
    assert isinstance(info.value.__cause__, ClientError)
    assert "after 1 retries" in str(info.value)
    assert provider.list_owned() == []


def test_an_insufficient_capacity_call_error_names_the_candidates(
    moto: Moto, network: Network, cluster: str
) -> None:
    """ICE can also fail the call itself (as RunInstances does): all candidates are named."""
    provider = _provider(moto, network, cluster, max_attempts=1)
    provider.ensure_launch_template()
    body = ec2_error("InsufficientInstanceCapacity", "We currently do not have capacity.")
    canned_response(provider.client, "CreateFleet", 500, body)
    with pytest.raises(InsufficientCapacity) as info:
        provider.launch(_request(cluster))
    assert info.value.offerings == _request(cluster).offerings()


def test_a_refusal_is_not_retryable_and_says_what_to_fix(
    moto: Moto, network: Network, cluster: str
) -> None:
    provider = _provider(moto, network, cluster)
    provider.ensure_launch_template()
    body = ec2_error("UnauthorizedOperation", "You are not authorized to perform this operation.")
    calls = canned_response(provider.client, "CreateFleet", 403, body)
    with pytest.raises(LaunchRefused) as info:
        provider.launch(_request(cluster))
    assert not info.value.retryable
    assert "grant ec2:CreateFleet" in str(info.value)
    assert len(calls) == 1  # a refusal is not retried


def test_zones_without_a_subnet_are_refused(moto: Moto, network: Network, cluster: str) -> None:
    provider = _provider(moto, network, cluster)
    req = LaunchRequest.for_claim("claim-far", [("m5.large", "us-east-1f")], "spot")
    with pytest.raises(LaunchRefused, match="no subnet"):
        provider.launch(req)


# --- one launch template per architecture ------------------------------------------------------

ARCH_OF = {"m5.large": "amd64", "c5.large": "amd64", "m6g.large": "arm64", "c6g.large": "arm64"}


def _arm_image(moto: Moto) -> str:
    """An arm64 AMI of moto's: the template of arm64 nodes must not boot an x86 one."""
    ec2 = fake_session().client("ec2", endpoint_url=moto.url)
    try:
        images = ec2.describe_images(
            Owners=["amazon"], Filters=[{"Name": "architecture", "Values": ["arm64"]}]
        )["Images"]
    finally:
        ec2.close()
    return str(images[0]["ImageId"]) if images else "ami-arm64"


def _image_of_template(moto: Moto, name: str) -> str:
    ec2 = fake_session().client("ec2", endpoint_url=moto.url)
    try:
        versions = ec2.describe_launch_template_versions(LaunchTemplateName=name)
    finally:
        ec2.close()
    return str(versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"])


def test_arm64_types_launch_from_the_arm64_template(
    moto: Moto, network: Network, cluster: str
) -> None:
    arm_image = _arm_image(moto)
    provider = _provider(
        moto,
        network,
        cluster,
        image_id_arm64=arm_image,
        architectures=("amd64", "arm64"),
        instance_arch=ARCH_OF,
    )
    fleets = _record(provider, "CreateFleet")

    instance = provider.launch(
        LaunchRequest.for_claim("claim-arm", [("m6g.large", ZONE_A), ("c6g.large", ZONE_B)], "spot")
    )

    assert instance.instance_type == "m6g.large"
    (config,) = fleets[0]["LaunchTemplateConfigs"]
    arm_template = provider.ensure_launch_template("arm64")
    assert config["LaunchTemplateSpecification"]["LaunchTemplateId"] == arm_template
    assert _image_of_template(moto, f"spotpack-{cluster}-arm64") == arm_image
    # Only the architecture asked for gets a template: no x86 one was created for this launch.
    ec2 = fake_session().client("ec2", endpoint_url=moto.url)
    names = [
        t["LaunchTemplateName"]
        for t in ec2.describe_launch_templates(
            Filters=[{"Name": "launch-template-name", "Values": [f"spotpack-{cluster}*"]}]
        )["LaunchTemplates"]
    ]
    ec2.close()
    assert names == [f"spotpack-{cluster}-arm64"]


def test_mixed_candidates_go_in_one_fleet_with_a_config_per_architecture(
    moto: Moto, network: Network, cluster: str
) -> None:
    provider = _provider(
        moto,
        network,
        cluster,
        launch_template_arm64=None,
        image_id_arm64=_arm_image(moto),
        architectures=("amd64", "arm64"),
        instance_arch=ARCH_OF,
    )
    fleets = _record(provider, "CreateFleet")

    provider.launch(
        LaunchRequest.for_claim(
            "claim-mixed",
            [("m5.large", ZONE_A), ("m6g.large", ZONE_A), ("c5.large", ZONE_B)],
            "spot",
        )
    )

    configs = fleets[0]["LaunchTemplateConfigs"]
    by_template = {
        c["LaunchTemplateSpecification"]["LaunchTemplateId"]: [
            o["InstanceType"] for o in c["Overrides"]
        ]
        for c in configs
    }
    assert by_template == {
        provider.ensure_launch_template("amd64"): ["m5.large", "c5.large"],
        provider.ensure_launch_template("arm64"): ["m6g.large"],
    }
    assert len(_claimed(moto, cluster, "claim-mixed")) == 1


def test_without_an_arm64_template_arm64_types_are_refused_not_booted_on_x86(
    moto: Moto, network: Network, cluster: str
) -> None:
    provider = _provider(moto, network, cluster, instance_arch=ARCH_OF)  # amd64 only
    fleets = _record(provider, "CreateFleet")
    with pytest.raises(LaunchRefused, match="no launch template for the architecture") as info:
        provider.launch(LaunchRequest.for_claim("claim-arm", [("m6g.large", ZONE_A)], "spot"))
    assert info.value.code == "NoLaunchTemplate"
    assert fleets == []
    assert _claimed(moto, cluster, "claim-arm") == []


def test_an_architecture_without_template_or_image_is_a_config_error(
    moto: Moto, network: Network, cluster: str
) -> None:
    with pytest.raises(ConfigError, match="launch template for arm64"):
        _provider(moto, network, cluster, architectures=("amd64", "arm64"))


# --- crash between CreateFleet and recording the claim ---------------------------------------


def test_a_crash_after_create_fleet_leaves_no_duplicate_and_no_unknown_orphan(
    moto: Moto, network: Network, cluster: str
) -> None:
    doomed = _provider(moto, network, cluster)

    def die(**_: Any) -> None:
        raise SimulatedCrash("the provisioner died right after CreateFleet returned")

    doomed.client.meta.events.register("after-call.ec2.CreateFleet", die)
    with pytest.raises(SimulatedCrash):
        doomed.launch(_request(cluster, "claim-crash"))
    launched = _claimed(moto, cluster, "claim-crash")
    assert len(launched) == 1  # the instance exists, nobody recorded it

    # Restart: a fresh provider (new client, no memory) launches the same claim again.
    restarted = _provider(moto, network, cluster)
    fleets = _record(restarted, "CreateFleet")
    instance = restarted.launch(_request(cluster, "claim-crash"))
    assert instance.instance_id == launched[0]["InstanceId"]
    assert fleets == []
    assert len(_claimed(moto, cluster, "claim-crash")) == 1

    # The orphan sweep: nothing orphaned while the claim is known; the instance once it is not.
    assert owned_without_claims(restarted, {"claim-crash"}) == []
    orphans = owned_without_claims(restarted, set())
    assert [o.instance_id for o in orphans] == [instance.instance_id]


def test_a_dropped_launch_result_is_found_again_by_a_fresh_provider(
    moto: Moto, network: Network, cluster: str
) -> None:
    _provider(moto, network, cluster).launch(_request(cluster, "claim-dropped"))  # result dropped
    restarted = _provider(moto, network, cluster)
    again = restarted.launch(_request(cluster, "claim-dropped"))
    assert len(_claimed(moto, cluster, "claim-dropped")) == 1
    assert owned_without_claims(restarted, {"claim-dropped"}) == []
    assert [o.instance_id for o in owned_without_claims(restarted, [])] == [again.instance_id]

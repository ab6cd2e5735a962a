"""EC2 error codes -> the error tree, and the pure halves of the AWS provider."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from spotpack.cloud.aws_errors import translate, translated
from spotpack.cloud.base import (
    CLAIM_TAG,
    CLUSTER_TAG,
    InsufficientCapacity,
    LaunchRefused,
    LaunchRequest,
    Offering,
    Throttled,
)
from spotpack.cloud.ec2_errors import ErrorClass, classify, error_for
from spotpack.cloud.ec2_fleet import (
    build_fleet_request,
    capacity_offerings,
    fleet_failure,
    instance_from_ec2,
    narrowed_token,
    parse_fleet_response,
)
from spotpack.errors import CloudError

SUBNETS = {"us-east-1a": "subnet-a", "us-east-1b": "subnet-b"}
ZONES = {v: k for k, v in SUBNETS.items()}


@pytest.mark.parametrize(
    ("code", "status", "kind", "error_type", "retryable"),
    [
        ("InsufficientInstanceCapacity", 500, ErrorClass.CAPACITY, InsufficientCapacity, True),
        ("UnfulfillableCapacity", 200, ErrorClass.CAPACITY, InsufficientCapacity, True),
        ("MaxSpotInstanceCountExceeded", 400, ErrorClass.CAPACITY, InsufficientCapacity, True),
        ("InsufficientCapacityOnHost", 400, ErrorClass.CAPACITY, InsufficientCapacity, True),
        ("VcpuLimitExceeded", 400, ErrorClass.CAPACITY, InsufficientCapacity, True),
        ("Unsupported", 400, ErrorClass.CAPACITY, InsufficientCapacity, True),
        ("capacity-not-available", None, ErrorClass.CAPACITY, InsufficientCapacity, True),
        ("RequestLimitExceeded", 503, ErrorClass.THROTTLED, Throttled, True),
        ("Throttling", 400, ErrorClass.THROTTLED, Throttled, True),
        ("ThrottlingException", 400, ErrorClass.THROTTLED, Throttled, True),
        ("InternalError", 500, ErrorClass.SERVER, CloudError, True),
        ("Unavailable", 503, ErrorClass.SERVER, CloudError, True),
        ("SomethingNew", 502, ErrorClass.SERVER, CloudError, True),
        ("AuthFailure", 401, ErrorClass.REFUSED, LaunchRefused, False),
        ("UnauthorizedOperation", 403, ErrorClass.REFUSED, LaunchRefused, False),
        ("InvalidParameterValue", 400, ErrorClass.REFUSED, LaunchRefused, False),
        ("InvalidInstanceID.Malformed", 400, ErrorClass.REFUSED, LaunchRefused, False),
        ("IdempotentParameterMismatch", 400, ErrorClass.REFUSED, LaunchRefused, False),
        ("SomethingNew", 400, ErrorClass.REFUSED, LaunchRefused, False),
    ],
)
def test_error_code_mapping(
    code: str, status: int | None, kind: ErrorClass, error_type: type, retryable: bool
) -> None:
    assert classify(code, status) is kind
    offering = Offering("g5.xlarge", "us-east-1a", "spot")
    error = error_for(code, "msg", operation="CreateFleet", status=status, offerings=[offering])
    assert type(error) is error_type
    assert (error.code, error.retryable) == (code, retryable)
    if isinstance(error, InsufficientCapacity):
        assert error.offerings == (offering,)


def test_refusals_say_what_to_fix() -> None:
    error = error_for("IdempotentParameterMismatch", "token reused", operation="CreateFleet")
    assert "attempt=n+1" in str(error)
    assert str(error).startswith("EC2 CreateFleet failed: IdempotentParameterMismatch")


def _client_error(code: str, status: int = 400, retries: int = 0) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
        },
        "CreateFleet",
    )


def test_botocore_failures_are_translated_once_and_chained() -> None:
    throttled = translate(_client_error("RequestLimitExceeded", 503, 2), "EC2", "CreateFleet")
    assert isinstance(throttled, Throttled) and "(after 2 retries)" in str(throttled)
    assert isinstance(translate(NoCredentialsError(), "EC2", "X"), LaunchRefused)
    assert isinstance(translate(NoRegionError(), "SQS", "X"), LaunchRefused)
    network = translate(EndpointConnectionError(endpoint_url="http://x"), "EC2", "X")
    assert isinstance(network, CloudError) and network.retryable
    timeout = translate(ReadTimeoutError(endpoint_url="http://x"), "EC2", "X")
    assert isinstance(timeout, CloudError) and timeout.retryable
    other = ValueError("not boto")
    assert translate(other, "EC2", "X") is other

    with pytest.raises(LaunchRefused) as info, translated("SQS", "DeleteMessage"):
        raise _client_error("ReceiptHandleIsInvalid")
    assert str(info.value).startswith("SQS DeleteMessage failed: ReceiptHandleIsInvalid")
    assert isinstance(info.value.__cause__, ClientError)


# --- the fleet request and answer ------------------------------------------------------------


def _req(capacity: Any = "spot") -> LaunchRequest:
    return LaunchRequest.for_claim(
        "claim-1",
        [
            ("m5.large", "us-east-1a"),
            ("m5.large", "us-east-1a"),  # a duplicate is sent once
            ("c5.large", "us-east-1b"),
            ("r5.large", "us-east-1c"),  # no subnet: skipped
        ],
        capacity,
        tags={CLUSTER_TAG: "spoofed", "team": "ml"},
    )


def test_fleet_request() -> None:
    fleet = build_fleet_request(
        _req(),
        templates={"amd64": {"LaunchTemplateId": "lt-1", "Version": "$Latest"}},
        subnet_by_zone=SUBNETS,
        cluster_name="prod",
    )
    params = fleet.params
    assert fleet.no_subnet == ("us-east-1c",)
    assert fleet.no_template == ()
    assert fleet.overrides == 2
    assert params["Type"] == "instant"
    assert params["ClientToken"] == _req().client_token
    (config,) = params["LaunchTemplateConfigs"]
    assert config["Overrides"] == [
        {"InstanceType": "m5.large", "SubnetId": "subnet-a"},
        {"InstanceType": "c5.large", "SubnetId": "subnet-b"},
    ]
    assert params["SpotOptions"] == {"AllocationStrategy": "price-capacity-optimized"}
    tags = {t["Key"]: t["Value"] for t in params["TagSpecifications"][0]["Tags"]}
    assert tags == {
        CLUSTER_TAG: "prod",  # ours win over the request's
        CLAIM_TAG: "claim-1",
        "Name": "prod/claim-1",
        "team": "ml",
    }
    on_demand = build_fleet_request(
        _req("on-demand"),
        templates={"amd64": {"LaunchTemplateName": "t", "Version": "$Default"}},
        subnet_by_zone=SUBNETS,
        cluster_name="prod",
    ).params
    assert on_demand["OnDemandOptions"] == {"AllocationStrategy": "lowest-price"}
    assert "SpotOptions" not in on_demand


def test_fleet_request_has_one_launch_template_config_per_architecture() -> None:
    req = LaunchRequest.for_claim(
        "claim-1",
        [
            ("m6g.large", "us-east-1a"),
            ("m5.large", "us-east-1a"),
            ("c6g.large", "us-east-1b"),
            ("x9.large", "us-east-1a"),  # not in the map: never sent
        ],
        "spot",
    )
    templates = {
        "arm64": {"LaunchTemplateName": "nodes-arm", "Version": "$Default"},
        "amd64": {"LaunchTemplateName": "nodes-x86", "Version": "$Default"},
    }
    arch_of = {"m6g.large": "arm64", "c6g.large": "arm64", "m5.large": "amd64"}
    fleet = build_fleet_request(
        req, templates=templates, subnet_by_zone=SUBNETS, cluster_name="prod", arch_of=arch_of
    )
    # In the candidates' order of preference: arm64 first, then amd64.
    assert fleet.params["LaunchTemplateConfigs"] == [
        {
            "LaunchTemplateSpecification": templates["arm64"],
            "Overrides": [
                {"InstanceType": "m6g.large", "SubnetId": "subnet-a"},
                {"InstanceType": "c6g.large", "SubnetId": "subnet-b"},
            ],
        },
        {
            "LaunchTemplateSpecification": templates["amd64"],
            "Overrides": [{"InstanceType": "m5.large", "SubnetId": "subnet-a"}],
        },
    ]
    assert fleet.no_template == ("x9.large",)
    # Without an arm64 template the Graviton types are left out, never put under the x86 one.
    x86_only = build_fleet_request(
        req,
        templates={"amd64": templates["amd64"]},
        subnet_by_zone=SUBNETS,
        cluster_name="prod",
        arch_of=arch_of,
    )
    (config,) = x86_only.params["LaunchTemplateConfigs"]
    assert config["Overrides"] == [{"InstanceType": "m5.large", "SubnetId": "subnet-a"}]
    assert x86_only.no_template == ("m6g.large", "c6g.large", "x9.large")


def _error(itype: str, subnet: str, code: str) -> dict[str, Any]:
    return {
        "LaunchTemplateAndOverrides": {
            "LaunchTemplateSpecification": {"LaunchTemplateId": "lt-1", "Version": "1"},
            "Overrides": {"InstanceType": itype, "SubnetId": subnet},
        },
        "Lifecycle": "spot",
        "ErrorCode": code,
        "ErrorMessage": "no",
    }


def test_fleet_answer_with_an_instance_and_errors() -> None:
    response = {
        "FleetId": "fleet-1",
        "Instances": [
            {
                "LaunchTemplateAndOverrides": {
                    "Overrides": {"InstanceType": "c5.large", "SubnetId": "subnet-b"}
                },
                "Lifecycle": "spot",
                "InstanceIds": ["i-0123"],
                "InstanceType": "c5.large",
            }
        ],
        "Errors": [_error("m5.large", "subnet-a", "InsufficientInstanceCapacity")],
    }
    result = parse_fleet_response(response, zone_of_subnet=ZONES, capacity="spot")
    assert result.instance_ids == ("i-0123",)
    assert result.launched == Offering("c5.large", "us-east-1b", "spot")
    assert capacity_offerings(result.errors) == (Offering("m5.large", "us-east-1a", "spot"),)


@pytest.mark.parametrize(
    ("codes", "error_type", "retryable"),
    [
        (["InsufficientInstanceCapacity", "InvalidParameterValue"], InsufficientCapacity, True),
        (["RequestLimitExceeded", "RequestLimitExceeded"], Throttled, True),
        (["InternalError", "InvalidParameterValue"], CloudError, True),
        (["InvalidParameterValue"], LaunchRefused, False),
        ([], CloudError, True),
    ],
)
def test_why_a_fleet_launched_nothing(codes: list[str], error_type: type, retryable: bool) -> None:
    response = {"Errors": [_error("m5.large", "subnet-a", c) for c in codes], "Instances": []}
    result = parse_fleet_response(response, zone_of_subnet=ZONES, capacity="spot")
    error = fleet_failure(result.errors, _req())
    assert type(error) is error_type and error.retryable is retryable
    if isinstance(error, InsufficientCapacity):
        assert error.offerings == (Offering("m5.large", "us-east-1a", "spot"),)


def test_capacity_error_without_an_override_names_every_candidate() -> None:
    result = parse_fleet_response(
        {"Errors": [{"ErrorCode": "UnfulfillableCapacity"}]}, zone_of_subnet=ZONES, capacity="spot"
    )
    error = fleet_failure(result.errors, _req())
    assert isinstance(error, InsufficientCapacity)
    assert error.offerings == _req().offerings()


def test_described_instances() -> None:
    item = {
        "InstanceId": "i-1",
        "InstanceType": "m5.large",
        "Placement": {"AvailabilityZone": "us-east-1a"},
        "InstanceLifecycle": "spot",
        "State": {"Name": "running"},
        "LaunchTime": datetime(2025, 1, 1, tzinfo=UTC),
        "PrivateDnsName": "ip-10-0-1-4.ec2.internal",
        "Tags": [{"Key": CLAIM_TAG, "Value": "claim-1"}],
    }
    instance = instance_from_ec2(item)
    assert (instance.capacity, instance.claim_id, instance.node_name) == (
        "spot",
        "claim-1",
        "ip-10-0-1-4.ec2.internal",
    )
    on_demand = instance_from_ec2({**item, "InstanceLifecycle": None, "PrivateDnsName": ""})
    assert (on_demand.capacity, on_demand.private_dns) == ("on-demand", None)


def test_narrowed_tokens_are_stable_and_distinct() -> None:
    token = _req().client_token
    narrowed = narrowed_token(token, [("m5.large", "us-east-1a")])
    assert narrowed == narrowed_token(token, [("m5.large", "us-east-1a")])
    assert narrowed != token != narrowed_token(token, [("c5.large", "us-east-1b")])
    assert len(narrowed) <= 64 and narrowed.isascii()

"""Cloud adapters: each cloud API behind the provisioner's small Protocol."""

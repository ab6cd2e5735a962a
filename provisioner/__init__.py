"""spotpack provisioner service."""

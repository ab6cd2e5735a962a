"""The mutating admission webhook: places pods on safe capacity and normalizes vGPU requests."""

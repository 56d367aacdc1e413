"""Provider adapters: the protocol, the registry, one module per provider family."""

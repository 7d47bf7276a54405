"""One module per resource, each a module-level `router` that `service.api.main` includes."""

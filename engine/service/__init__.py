"""Layer 8: the engine service, jobs, watcher, control API, clients, demo."""

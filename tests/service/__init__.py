"""engine/service: the engine service, control API, jobs, watcher, crash recovery."""

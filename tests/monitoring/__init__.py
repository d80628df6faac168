"""engine/monitoring: drift, monitors, performance, alerts."""

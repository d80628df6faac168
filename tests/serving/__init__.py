"""engine/serving: the endpoint, both protocols, limits, fuzzing, hot swaps."""

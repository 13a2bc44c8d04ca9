"""External calls: 99.5% of the calls to the "openai" service succeed (declared in code)."""

import obskit

obskit.slo("llm", objective=0.995, target="openai", window="28d")

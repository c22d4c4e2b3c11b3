"""SMS diversion after hangup: rules, templates, the outbox and transports."""

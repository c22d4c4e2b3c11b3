"""Reports from call records and agent states: the figures of ``acd report
calls`` and the queue_log (Asterisk's format) written and read (docs/reports.md).

Sans-I/O: records and events in, figures and lines out.
"""

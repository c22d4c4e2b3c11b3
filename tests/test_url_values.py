"""Values put into a lookup's URL are percent-encoded for where they land:
what a caller sends (caller id, typed digits) can neither add a query
parameter nor change the path; a variable opening the template may hold a
base URL."""

from __future__ import annotations

import pytest

from acd.ivr.expr import parse_template
from acd.ivr.interpreter import FlowRun, LookupData
from acd.ivr.parse import parse_flow

VALUES = {"caller.number": "+8613800138000", "evil": "1&admin=1#x", "dots": "..",
          "slash": "a/../b", "base": "http://10.0.0.5:8099/api v2", "typed": "12 34"}


@pytest.mark.parametrize(("template", "url"), [
    ("http://h/account?msisdn={caller.number}", "http://h/account?msisdn=%2B8613800138000"),
    ("http://h/account?msisdn={evil}", "http://h/account?msisdn=1%26admin%3D1%23x"),
    ("http://h/acc/{dots}/balance", "http://h/acc/%2E%2E/balance"),
    ("http://h/acc/{slash}", "http://h/acc/a%2F..%2Fb"),
    ("http://h/acc/{evil}", "http://h/acc/1%26admin%3D1%23x"),
    ("{base}/account?m={typed}", "http://10.0.0.5:8099/api%20v2/account?m=12%2034"),
])
def test_values_are_encoded_for_their_place(template: str, url: str) -> None:
    assert parse_template(template).render_url(VALUES.get) == url


def test_the_flow_s_lookup_url_carries_the_caller_id_as_one_value() -> None:
    flow = parse_flow("""
flow: f
start: look
nodes:
  look: {type: lookup, source: http, url: "http://h/a?msisdn={caller.number}", next: q,
         on_error: q}
  q: {type: queue, queue: general}
""")
    step = FlowRun(flow, {"number": "13800138000&role=admin"}).start()
    assert isinstance(step, LookupData)
    assert step.url == "http://h/a?msisdn=13800138000%26role%3Dadmin"

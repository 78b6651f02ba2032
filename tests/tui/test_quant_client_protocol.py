"""The real quantization client and the tests' fake implement one protocol, method for method, with the
same parameters: a view written against QuantClient cannot work with one and break with the other."""

from __future__ import annotations

import inspect

import pytest
from fake_quant import FakeQuantClient
from temper.tui.engine_quant_client import EngineQuantClient
from temper.tui.quant_client import QuantClient

METHODS = [name for name, value in vars(QuantClient).items()
           if callable(value) and not name.startswith("_")]


def test_the_protocol_lists_the_methods() -> None:
    assert len(METHODS) == 20 and {"start", "resume", "measure", "run_evals"} <= set(METHODS)


@pytest.mark.parametrize("client", [EngineQuantClient, FakeQuantClient])
@pytest.mark.parametrize("name", METHODS)
def test_both_clients_implement_each_method_with_the_same_parameters(client, name) -> None:
    wanted = list(inspect.signature(getattr(QuantClient, name)).parameters)
    assert hasattr(client, name), f"{client.__name__} lacks {name}"
    assert list(inspect.signature(getattr(client, name)).parameters) == wanted

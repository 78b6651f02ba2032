"""One quantizable() rule: the sensitivity pass (tensors.quantizable) and the planner's inventory
(inventory.quantizable_modules) list the same tensors and treat a predicate that raises the same way."""

from __future__ import annotations


def test_a_predicate_that_raises_is_an_error_for_both(engine, tiny_llama) -> None:
    """Before: tensors.quantizable counted a tensor whose predicate raised as quantizable, while the
    inventory raised: the sensitivity pass scored tensors the plan then could not place."""

    def work(ctx):
        from temper.core.engine.loader import load
        from temper.core.quant.inventory import quantizable_modules
        from temper.core.quant.tensors import quantizable

        model = load(tiny_llama).model
        same = {t.path for t in quantizable(model)} == {p for p, _, _ in quantizable_modules(model)}

        def refuses(path, module):
            raise ValueError(f"{path}: this predicate needs the model's config")

        model.quant_predicate = refuses
        verdicts = []
        for rule in (quantizable, quantizable_modules):
            try:
                rule(model)
                verdicts.append("counted")
            except ValueError as exc:
                verdicts.append(str(exc).split(": ", 1)[1])
        return same, verdicts

    same, verdicts = engine.run(work)
    assert same
    assert verdicts == ["this predicate needs the model's config"] * 2

"""The rules' state vocabulary and the model's choices are one list."""

from inventory.choices import OwnershipState as ModelState
from inventory.rules.states import OwnershipState as RuleState


def test_every_rule_state_is_a_model_choice_with_the_same_name_and_value():
    assert [(s.name, s.value) for s in RuleState] == [(c.name, c.value) for c in ModelState]


def test_a_rule_state_and_its_model_choice_compare_equal_as_stored():
    for state in RuleState:
        assert ModelState(state.value) == state
        assert str(state) == state.value

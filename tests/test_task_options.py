"""The task options are one record (``TaskOptions``): the API's keywords, the trial's checks
and a run folder's checks all read it."""

from __future__ import annotations

import pytest

from petscale.errors import UserError
from petscale.settings import TrialConfig
from petscale.tasks.base import TASK_OPTIONS, TaskOptions


def test_the_record_names_the_options_and_gives_the_set_ones():
    assert TASK_OPTIONS == ("data_dir", "text_field", "text_pair_field", "label_field", "encoding")
    assert TaskOptions(text_field="sentence").given() == {"text_field": "sentence"}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"text_fieldd": "x"}, r"unknown task option\(s\) \['text_fieldd'\]"),
        ({"label_field": 3}, "task option 'label_field' must be text, got 3"),
    ],
)
def test_a_trial_refuses_a_bad_task_option(options, message):
    with pytest.raises(UserError, match=message):
        TrialConfig.parse({"task_options": options})

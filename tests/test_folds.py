"""Walk-forward folds: generation and validation."""

import pandas as pd
import pytest

from trainables.folds import Fold, FoldError, generate, parse_fold, validate, windows

TS = pd.Series(pd.bdate_range("2010-01-01", periods=1500))


def test_generated_folds_walk_forward_without_overlap():
    folds = generate(TS, 3, val_size=50, test_size=40)
    for f in folds:
        train, val, test = windows(f, TS)
        assert train.start == 0 and train.stop == val.start and val.stop == test.start
        assert len(val) == 50 and len(test) == 40
    tests = [windows(f, TS)[2] for f in folds]
    assert tests[-1].stop == len(TS)
    assert [t.start for t in tests[1:]] == [t.stop for t in tests[:-1]]
    validate(folds, TS, context=30, horizon=5)


def test_rolling_folds_have_fixed_train_length():
    folds = generate(TS, 2, val_size=50, test_size=50, window="rolling", train_size=300)
    assert [len(windows(f, TS)[0]) for f in folds] == [300, 300]


def test_too_many_folds_is_an_error():
    with pytest.raises(FoldError, match="not enough rows"):
        generate(TS, 30, val_size=50, test_size=50)


def _fold(**over):
    base = dict(
        name="f",
        train_start="20100101",
        train_end="20121231",
        val_start="20130101",
        val_end="20131231",
        test_start="20140101",
        test_end="20140601",
    )
    return Fold(**{**base, **over})


@pytest.mark.parametrize(
    "over, message",
    [
        ({"train_end": "20130601"}, "train_end 20130601 must come before val_start"),
        ({"val_start": "20140201"}, "val_start .* must come before val_end"),
        ({"test_end": "20200101"}, "outside the data"),
        ({"train_start": "20000101"}, "outside the data"),
    ],
)
def test_bad_folds_name_fold_and_field(over, message):
    with pytest.raises(FoldError, match=message):
        validate([_fold(**over)], TS, context=10, horizon=1)


def test_too_short_windows():
    with pytest.raises(FoldError, match="train window has .* rows, needs at least 910"):
        validate([_fold()], TS, context=900, horizon=10)
    with pytest.raises(FoldError, match="test window has .* needs at least horizon 200"):
        validate([_fold()], TS, context=10, horizon=200)


def test_parse_fold_checks_keys_and_dates():
    with pytest.raises(FoldError, match="unknown key 'train_begin'"):
        parse_fold({"train_begin": "x"}, "walk_forward.folds[0]")
    raw = _fold().as_dict()
    raw["val_end"] = "2013-13-45"
    with pytest.raises(FoldError, match=r"folds\[0\].val_end: '2013-13-45' is not a date"):
        parse_fold(raw, "walk_forward.folds[0]")
    assert parse_fold({**_fold().as_dict(), "val_end": 20131231}, "w").val_end == "20131231"

"""Regression tests of the lead's own fixes in session 14."""
import pytest

from sorter.errors import InputError
from sorter.plan import parse_plan_csv


def test_plan_csv_comment_and_blank_lines_before_the_header_are_skipped():
    # the README says '#' lines are comments; one before the header was a "bad header"
    text = ("# plan of wave 1\n\n#  exported by the WMS\ndestination,chutes\n"
            "X1,C001;C002\n# a comment between rows\nX2,C003\n")
    assert parse_plan_csv(text) == {"X1": ("C001", "C002"), "X2": ("C003",)}


def test_plan_csv_bad_header_after_comments_names_its_own_line():
    with pytest.raises(InputError) as e:
        parse_plan_csv("# c\n\ndest,chute\nX1,C001\n", path="p.csv")
    assert e.value.line == 3 and e.value.field == "header"


def test_plan_csv_of_only_comments_says_there_is_no_header():
    with pytest.raises(InputError, match="no header line"):
        parse_plan_csv("# nothing yet\n\n", path="p.csv")

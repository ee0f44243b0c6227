"""The bad-input and fault suite (issue 21): every hostile input gets one named error or a correct
result, and no fault damages an earlier file. ``python -m tests.robustness.tally`` prints the tally."""

"""The label contract: one fixed order, defined here and imported everywhere.

The order is part of the saved model (its heads' output rows), so it is never
derived from data. See data/annotations/GUIDELINES.md for what each label means.
"""

STANCE = ("support", "oppose", "neutral")
SENTIMENT = ("positive", "negative", "neutral")

TASKS = {"stance": STANCE, "sentiment": SENTIMENT}


def label_id(task: str, label: str) -> int:
    labels = TASKS[task]
    if label not in labels:
        raise ValueError(f"unknown {task} label {label!r}; expected one of {', '.join(labels)}")
    return labels.index(label)

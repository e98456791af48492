"""Small GLUE folders in the official download layout, written by the tests themselves.

Each task gets `TRAIN_ROWS` training rows (plus one malformed row, under the 1% tolerance) and
`DEV_ROWS` dev rows, in that task's real file format: CoLA without header, MRPC with a BOM and
its `Quality` column, string labels for RTE/QNLI/MNLI, float scores for STS-B, and so on.
The text is "easy": the label can be read off one word, so a small model learns it quickly.

GLUE files use no quoting, so a `"` is an ordinary character. In the tasks of `QUOTED_COLUMNS`,
rows `QUOTED_ROWS` of every file carry a field that opens a quote it never closes and one that
quotes a phrase: a CSV reader would strip those quotes or run on across tabs and lines.
"""

from __future__ import annotations

import random
from pathlib import Path

TRAIN_ROWS = 120
DEV_ROWS = 24

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "dreadful", "terrible"]
NOUNS = ["film", "movie", "story", "plot", "cast", "show", "book", "song"]


def _sentence(rng: random.Random, polarity: int) -> str:
    word = rng.choice(POSITIVE if polarity else NEGATIVE)
    return f"the {rng.choice(NOUNS)} was {word} ."


def _labels(n: int, num_labels: int, rng: random.Random) -> list[int]:
    labels = [i % num_labels for i in range(n)]
    rng.shuffle(labels)
    return labels


def _rows(task: str, n: int, rng: random.Random, dev: bool) -> tuple[list[str] | None, list[list[str]], list]:
    """Header, rows and the expected Hub label of each row for one file."""
    if task == "CoLA":
        labels = _labels(n, 2, rng)
        rows = [["gj04", str(y), "" if y else "*", _sentence(rng, y)] for y in labels]
        return None, rows, labels
    if task == "SST-2":
        labels = _labels(n, 2, rng)
        return ["sentence", "label"], [[_sentence(rng, y) + " ", str(y)] for y in labels], labels
    if task == "MRPC":
        labels = _labels(n, 2, rng)
        rows = []
        for i, y in enumerate(labels):
            first = _sentence(rng, 1)
            rows.append([str(y), str(1000 + i), str(2000 + i), first, first if y else _sentence(rng, 0)])
        return ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"], rows, labels
    if task == "STS-B":
        scores = [round(rng.uniform(0, 5), 3) for _ in range(n)]
        header = [
            "index",
            "genre",
            "filename",
            "year",
            "old_index",
            "source1",
            "source2",
            "sentence1",
            "sentence2",
            "score",
        ]
        rows = [
            [
                str(i),
                "main-news",
                "headlines",
                "2015",
                str(i),
                "none",
                "none",
                _sentence(rng, 1),
                _sentence(rng, int(s > 2.5)),
                f"{s}",
            ]
            for i, s in enumerate(scores)
        ]
        return header, rows, scores
    if task == "QQP":
        labels = _labels(n, 2, rng)
        rows = [
            [
                str(i),
                str(2 * i),
                str(2 * i + 1),
                f"is the {NOUNS[i % 8]} good ?",
                f"is the {NOUNS[i % 8]} {'good' if y else 'bad'} ?",
                str(y),
            ]
            for i, y in enumerate(labels)
        ]
        return ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"], rows, labels
    if task == "MNLI":
        names = ["entailment", "neutral", "contradiction"]
        labels = _labels(n, 3, rng)
        parses = ["( a )"] * 4
        extra = ["label1", "label2", "label3", "label4", "label5"] if dev else ["label1"]
        header = [
            "index",
            "promptID",
            "pairID",
            "genre",
            "sentence1_binary_parse",
            "sentence2_binary_parse",
            "sentence1_parse",
            "sentence2_parse",
            "sentence1",
            "sentence2",
            *extra,
            "gold_label",
        ]
        rows = [
            [
                str(i),
                str(i),
                f"{i}e",
                "fiction",
                *parses,
                _sentence(rng, 1),
                f"it is {names[y]} .",
                *([names[y]] * len(extra)),
                names[y],
            ]
            for i, y in enumerate(labels)
        ]
        return header, rows, labels
    if task in ("QNLI", "RTE"):
        names = ["entailment", "not_entailment"]
        labels = _labels(n, 2, rng)
        second = "question" if task == "QNLI" else "sentence1"
        third = "sentence" if task == "QNLI" else "sentence2"
        rows = [
            [str(i), _sentence(rng, 1), "yes it is ." if y == 0 else "no it is not .", names[y]]
            for i, y in enumerate(labels)
        ]
        return ["index", second, third, "label"], rows, labels
    if task == "WNLI":
        labels = _labels(n, 2, rng)
        rows = [
            [str(i), _sentence(rng, 1), "yes it is ." if y else "no it is not .", str(y)] for i, y in enumerate(labels)
        ]
        return ["index", "sentence1", "sentence2", "label"], rows, labels
    raise ValueError(task)


# Task folder -> the TSV column whose text gets quotes (a single sentence and two pair tasks).
QUOTED_COLUMNS = {"SST-2": "sentence", "QQP": "question1", "MNLI": "sentence1"}
QUOTED_ROWS = (1, 2)  # before the malformed row (inserted mid-file) and not row 0, which it copies


def unmatched_quote(text: str) -> str:
    """The text behind a `"` that never closes, at the start of the field where CSV would see quoting."""
    return '"' + text


def quoted_phrase(text: str) -> str:
    """The text as a quoted phrase opening the field, followed by more words."""
    return f'"{text}" , they said .'


def _add_quotes(task: str, header: list[str], rows: list[list[str]]) -> None:
    column = header.index(QUOTED_COLUMNS[task])
    for row_index, quote in zip(QUOTED_ROWS, (unmatched_quote, quoted_phrase)):
        rows[row_index][column] = quote(rows[row_index][column])


TASK_FOLDERS = ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"]


def write_file(path: Path, header: list[str] | None, rows: list[list[str]], bom: bool = False) -> None:
    lines = (["\t".join(header)] if header else []) + ["\t".join(row) for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")


def write_glue_folder(root: Path, seed: int = 0, malformed_row: bool = True, train_rows: int = TRAIN_ROWS) -> dict:
    """Write all nine tasks under `root`; returns {task folder: {file: expected Hub labels}}."""
    rng = random.Random(seed)
    expected: dict[str, dict[str, list]] = {}
    for task in TASK_FOLDERS:
        files = {"train.tsv": train_rows}
        if task == "MNLI":
            files.update({"dev_matched.tsv": DEV_ROWS, "dev_mismatched.tsv": DEV_ROWS})
        else:
            files["dev.tsv"] = DEV_ROWS
        expected[task] = {}
        for file_name, n in files.items():
            header, rows, labels = _rows(task, n, rng, dev=file_name != "train.tsv")
            if task in QUOTED_COLUMNS:
                _add_quotes(task, header, rows)
            if malformed_row and file_name == "train.tsv":
                rows.insert(len(rows) // 2, rows[0][:-1])  # one field short: must be skipped, not crash
            write_file(root / task / file_name, header, rows, bom=task == "MRPC")
            expected[task][file_name] = labels
    return expected

"""Builds the shipped sample files from the team-written sources in this folder.

    python sample_data/build_sample_data.py

part_a.json and part_b.json hold the documents, queries and answers in readable form; this script
writes CLB_PROPTIT.csv, train_data_proptit.xlsx and test_data_proptit.xlsx in the club's schema at the
repository root. A query with one relevant document gets a plain integer, several get "15, 37".
"""

import json
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PARTS = ("part_a.json", "part_b.json")


def ground_truth_cell(ids: list[int]) -> int | str:
    return ids[0] if len(ids) == 1 else ", ".join(str(doc_id) for doc_id in ids)


def query_rows(items: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({
        "Query": [item["query"] for item in items],
        "Ground truth document": [ground_truth_cell(item["ground_truth"]) for item in items],
        "Ground truth answer": [item["answer"] for item in items],
        "Difficulty": [item["difficulty"] for item in items],
    })


def main() -> None:
    parts = [json.loads((HERE / name).read_text(encoding="utf-8")) for name in PARTS]
    documents = sorted((doc for part in parts for doc in part["documents"]), key=lambda doc: doc["STT"])
    pd.DataFrame({"STT": [doc["STT"] for doc in documents], "Văn bản": [doc["text"] for doc in documents]}
                 ).to_csv(ROOT / "CLB_PROPTIT.csv", index=False, encoding="utf-8")
    # Interleave the two halves so the first rows of each file cover the whole club.
    for split, file_name in (("train", "train_data_proptit.xlsx"), ("test", "test_data_proptit.xlsx")):
        halves = [part[split] for part in parts]
        items = [item for pair in zip(*halves) for item in pair]
        query_rows(items).to_excel(ROOT / file_name, index=False)
    print(f"{len(documents)} documents; train and test written to {ROOT}")


if __name__ == "__main__":
    main()

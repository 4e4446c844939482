"""Seeded, non-overlapping windows."""

import pyarrow as pa
import pytest

from massact.errors import UserError
from massact.sampling import draw_windows, special_prefix
from massact.sources import byte_tokenizer

CORPUS = pa.table({"doc_id": pa.array([0, 1], pa.int32()),
                   "name": ["a", "b"],
                   "text": ["abcdefghij" * 30, "0123456789" * 20]})


@pytest.mark.parametrize("bos", [False, True])
def test_windows_are_seeded_disjoint_and_from_the_corpus(bos):
    tok = byte_tokenizer(add_bos=bos)
    a = draw_windows(CORPUS, tok, 5, 20, seed=3)
    assert a.equals(draw_windows(CORPUS, tok, 5, 20, seed=3))
    assert not a.equals(draw_windows(CORPUS, tok, 5, 20, seed=4))
    held = draw_windows(CORPUS, tok, 5, 20, seed=3, split="heldout", n_heldout=4)
    prefix = special_prefix(tok)
    assert len(prefix) == int(bos)
    spans = set()
    for t in (a, held):
        for d, s, ids in zip(*(t.column(c).to_pylist() for c in ("doc_id", "start", "input_ids"))):
            assert len(ids) == 20 and ids[:len(prefix)] == prefix
            body = ids[len(prefix):]
            text = CORPUS.column("text")[d].as_py()
            assert tok.decode(body) == text[s:s + len(body)]  # byte tokenizer: 1 token = 1 char
            for p in range(s, s + len(body)):
                assert (d, p) not in spans  # analysis and held-out windows never overlap
                spans.add((d, p))


def test_too_few_windows():
    with pytest.raises(UserError, match="only .* non-overlapping windows"):
        draw_windows(CORPUS, byte_tokenizer(False), 100, 20, seed=0)

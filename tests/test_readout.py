"""The vocabulary's factorisation read from a factored unembedding."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from factored import products, readout


def test_a_factored_unembedding_reveals_the_vocabulary():
    process = products.paper_process()
    parts = products.decode(process, np.arange(process.vocab_size))  # [432, 5] sub-tokens
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.normal(size=(120, 10)))[0].T  # 5 orthogonal planes in the paper's d_model, [10, d]
    # additive logits: token t gets sum_n u_n[t_n] . (factor n's plane)
    unembed = sum(rng.normal(size=(v, 2))[parts[:, n]] @ Q[2 * n : 2 * n + 2] for n, v in enumerate([3, 3, 3, 4, 4]))
    for n in range(5):
        labels, scores = readout.token_partition(readout.token_readout(unembed, Q[2 * n : 2 * n + 2]))
        assert adjusted_rand_score(parts[:, n], labels) == 1.0 and max(scores, key=scores.get) == [3, 3, 3, 4, 4][n]


def test_a_readout_too_small_to_partition_is_refused():
    with pytest.raises(ValueError, match="readout must be"):
        readout.token_partition(np.zeros((2, 3)))

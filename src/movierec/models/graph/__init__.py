"""Graph recommenders on the user–item bipartite graph (LightGCN, NGCF, AttnGraphRec, ...).

All of them are built on (and all but UltraGCN propagate embeddings over) the symmetric-normalized
bipartite adjacency

    Â = D^-1/2 A D^-1/2,   A = [[0, R], [Rᵀ, 0]]   (size (|U|+|I|)²),

where R is the binary user × item matrix of the *training* interactions and D the diagonal degree
matrix of A (a node without edges keeps a zero row). Â is built once per fit (and again on load)
from `seen_`, vectorized, as a coalesced `torch.sparse_coo_tensor`; it is a non-persistent buffer
of the module, so it never enters the saved weights. With `sampling="full"` (default),
training recomputes the full-graph propagation at every mini-batch (as LightGCN and NGCF do);
with `sampling="neighbor"` each mini-batch propagates only over the `n_layers`-hop subgraph
sampled around its users, positives and negatives (`NeighborSampler`: up to `num_neighbors`
neighbours per node and hop, weights Â_wv · d_w / s_w so that a sampled layer is an unbiased
estimate of the full one; PyG's LinkNeighborLoader in plain torch, since its sampling backends
pyg-lib / torch-sparse are not assumed). Scoring always uses the full graph: it propagates
once and caches the final embeddings in the module (keyed on the parameters' versions, so any
weight update or `load_state_dict` invalidates it), then scores a user block against the items.

Models:

- `LightGCN` (He et al., SIGIR 2020): E^(k+1) = Â E^(k), E = Σ_k α_k E^(k) with α_k = 1/(K+1),
  ŷ_ui = e_uᵀ e_i, BPR + λ‖E^(0)_batch‖².
- `NGCF` (Wang et al., SIGIR 2019): E^(k+1) = LeakyReLU((Â + I) E^(k) W1 + (Â E^(k)) ⊙ E^(k) W2),
  node and message dropout, E = [E^(0) ‖ … ‖ E^(K)], ŷ_ui = e_uᵀ e_i (BPR) or a rating (MSE).
- `AttnGraphRec`: embeddings + LightGCN-style layers, a pairwise attention over the layers per side,
  and an MLP on the attended pair that predicts a rating (MSE) or a ranking score (BPR).
- `UltraGCN` (Mao et al., CIKM 2021): no message passing; ŷ_ui = e_uᵀ e_i trained by weighted BCE
  whose degree weights β_{u,i} stand in for infinitely many layers, plus an item–item
  neighbourhood constraint (`_contrastive`).
- `XSimGCL` (Yu et al., TKDE 2023): LightGCN layers with uniform noise in training, BPR plus an
  InfoNCE contrast between the final and the l*-th layer (`_contrastive`).
"""

from __future__ import annotations

from movierec.models.graph._contrastive import UltraGCN, UltraGCNModule, XSimGCL, XSimGCLModule
from movierec.models.graph._graph import (
    NeighborSampler,
    PopularityNegativeSampler,
    SampledGraph,
    drop_edges,
    normalized_adjacency,
    propagate,
    propagate_sampled,
    sampled_adjacency,
    sparse_adjacency,
)
from movierec.models.graph._models import NGCF, AttnGraphRec, LightGCN
from movierec.models.graph._modules import AttnGraphRecModule, LightGCNModule, NGCFModule

__all__ = ["NGCF", "AttnGraphRec", "AttnGraphRecModule", "LightGCN", "LightGCNModule",
           "NGCFModule", "NeighborSampler", "PopularityNegativeSampler", "SampledGraph",
           "drop_edges", "normalized_adjacency", "propagate", "propagate_sampled",
           "sampled_adjacency", "sparse_adjacency", "UltraGCN", "UltraGCNModule", "XSimGCL",
           "XSimGCLModule"]

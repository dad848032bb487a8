"""A criterion of our own, as a plugin: MEST with its two terms on one scale.

MEST keeps the weights with the largest ``|w| + gamma |g|``. On MNIST-1D the mean gradient of the
active weights is 20 to 400 times smaller than their mean magnitude (measured over the layers of a
density-0.1 run at epochs 1 to 100), so with the published ``gamma = 1`` the gradient term hardly
moves the ranking and MEST removes nearly what magnitude removes.
``balanced_mest`` divides each term by its mean over the active weights being ranked (a layer's, or
all layers' under global pruning), so ``gamma`` weighs the two as a ratio whatever their units:

    score = |w| / mean|w| + gamma |g| / mean|g|        (higher = keep; gamma = 1 by default)

Run it against the paper's five criteria (from the repository's root):

    PYTHONPATH=examples/plugins dst-study run examples/plugins/balanced_mest.yaml
    dst-study compare results/mnist1d_fig1 results/mnist1d_balanced_mest --where 'growth == "random"'
"""

import dst_core

TINY = 1e-12  # a layer whose active gradients are all 0 (it happens at a fresh mask) divides by this


@dst_core.register_criterion("balanced_mest", needs_grad=True, paper_order="before_step",
                             description="|w|/mean|w| + gamma |g|/mean|g|")
def balanced_mest(w, g, mask, generator=None, *, gamma: float = 1.0):
    w, g = w.abs(), g.abs()
    return w / (w.mean() + TINY) + gamma * g / (g.mean() + TINY)

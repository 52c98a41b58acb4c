"""Video collections: embed every video once, then search and classify them without decoding.

A video's embedding does not depend on the labels it is later scored against, so a collection is
encoded once into an *index* (a folder holding a LanceDB table, :mod:`~actionclip.collection.store`),
incrementally and resumably (:mod:`~actionclip.collection.build`, locally or on a Ray cluster:
:mod:`~actionclip.collection.raydata`). Any later label set, or a free-text query, costs a matrix
product with the stored embeddings (:mod:`~actionclip.collection.query`). The index remembers the
model that built it (:mod:`~actionclip.collection.model_ref`).

    import actionclip
    idx = actionclip.index(["videos/"], "my-index", model="vit-b-32-8f")
    idx.search("someone slipping on stairs", top_k=5)
    idx.classify(["running", "cooking", "dancing"]).probs

Needs the optional ``index`` extra (LanceDB): ``pip install 'actionclip[index]'``.
"""

from actionclip.collection.build import BuildReport, index
from actionclip.collection.query import Classification, Hit, Index, open_index

__all__ = ["index", "Index", "open_index", "Hit", "Classification", "BuildReport"]

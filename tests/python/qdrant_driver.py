"""Fills qdrant-client's local mode (`QdrantClient(":memory:")`) with Sightline's image vectors and
searches it, for the embedding tests (tests/tests/embeddings.rs).

Reads a JSON spec on stdin: {"dim", "images": {name: vector}, "queries": {name: vector}} and
prints {"nearest": {image: [names, best first]}, "ranked": {query: [names, best first]}}: each
image's own vector searched back, and each text query's ranking of the images.
"""

import json
import sys

from qdrant_client import QdrantClient, models


def main():
    spec = json.load(sys.stdin)
    names = sorted(spec["images"])
    client = QdrantClient(":memory:")
    client.create_collection(
        "images", vectors_config=models.VectorParams(size=spec["dim"], distance=models.Distance.COSINE)
    )
    client.upsert(
        "images",
        points=[
            models.PointStruct(id=i, vector=spec["images"][name], payload={"name": name})
            for i, name in enumerate(names)
        ],
    )

    def ranked(vector):
        hits = client.query_points("images", query=vector, limit=len(names)).points
        return [hit.payload["name"] for hit in hits]

    json.dump(
        {
            "nearest": {name: ranked(spec["images"][name]) for name in names},
            "ranked": {query: ranked(vector) for query, vector in spec["queries"].items()},
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()

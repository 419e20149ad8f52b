"""Who is who: one `person_id` for the tracks of one person, within a video and across a folder.

- `cluster`: complete-linkage clustering of track embeddings at `THRESHOLD`.
- `stage`: the per-video persons stage (always on, embeddings in memory only).
- `store`: the `<out>/.identity/` files that `--identity` writes: embeddings and the registry.
- `link`: persons linked across a folder, named from `--people` photos, timelines rewritten.
- `labels`: what the annotated video writes for a person.
"""

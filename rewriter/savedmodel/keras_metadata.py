"""Keras metadata of a SavedModel: keras_metadata.pb (TF 2.5+'s Keras reads it) and its copy in
the object graph's `SavedObject.user_object.metadata` (where TF 2.3's and 2.4's Keras read it)."""
from __future__ import annotations

from typing import Iterator

from google.protobuf import message

from rewriter.errors import BadInput
from rewriter.findings import Finding
from rewriter.protos import saved_model_pb2
from rewriter.savedmodel.files import KERAS_METADATA_PB, SAVED_MODEL_PB, SavedModelFiles

# What TF's Keras loaders revive as Keras objects (tf_keras/saving/saved_model/constants.py
# KERAS_OBJECT_IDENTIFIERS, the same list in TF 2.3); anything else is revived as a generic object.
KERAS_OBJECT_IDENTIFIERS = frozenset({
    "_tf_keras_layer", "_tf_keras_input_layer", "_tf_keras_network", "_tf_keras_model",
    "_tf_keras_sequential", "_tf_keras_metric", "_tf_keras_rnn_layer"})
GENERIC_USER_OBJECT = "_generic_user_object"  # what Keras 3 exports write for their objects


def read_keras_metadata(files: SavedModelFiles) -> message.Message | None:
    """keras_metadata.pb parsed with the newest shipped SavedMetadata schema; None if absent."""
    if KERAS_METADATA_PB not in files.other_files:
        return None
    from rewriter.verify import schema_check

    newest = schema_check.schema_releases()[-1]
    desc = schema_check.load_schema(newest).message_named("SavedMetadata")
    if desc is None:
        raise BadInput(f"{KERAS_METADATA_PB}: no SavedMetadata schema shipped to read it")
    from google.protobuf import message_factory

    msg = message_factory.GetMessageClass(desc)()
    try:
        msg.ParseFromString((files.root / KERAS_METADATA_PB).read_bytes())
    except message.DecodeError as error:
        raise BadInput(f"{KERAS_METADATA_PB}: does not parse ({error})") from None
    return msg


def fold_into_object_graph(proto: saved_model_pb2.SavedModel, keras: message.Message) -> tuple[int, list[Finding]]:
    """Put each Keras object's metadata where TF 2.3's Keras reads it: SavedObject.user_object.
    Returns how many objects got it, and a refusal per metadata entry that names no user object."""
    graph = proto.meta_graphs[0].object_graph_def
    folded = 0
    refusals: list[Finding] = []
    for node in keras.nodes:  # type: ignore[attr-defined]
        if node.node_id >= len(graph.nodes):
            refusals.append(Finding("refused", KERAS_METADATA_PB, f"nodes[node_id={node.node_id}]",
                                    "SavedMetadata", f"names object {node.node_id}, which the object graph lacks"))
            continue
        target = graph.nodes[node.node_id]
        if target.WhichOneof("kind") != "user_object":
            refusals.append(Finding(
                "refused", KERAS_METADATA_PB, f"nodes[node_id={node.node_id}]", "SavedMetadata",
                f"metadata for object {node.node_id} ({node.node_path}), which is a {target.WhichOneof('kind')}, "
                "not a user object"))
            continue
        target.user_object.identifier = node.identifier
        target.user_object.version.producer = node.version.producer
        target.user_object.version.min_consumer = node.version.min_consumer
        del target.user_object.version.bad_consumers[:]
        target.user_object.version.bad_consumers.extend(node.version.bad_consumers)
        target.user_object.metadata = node.metadata
        folded += 1
    return folded, refusals


def make_objects_generic(proto: saved_model_pb2.SavedModel) -> int:
    """Every Keras object of the object graph becomes a generic user object without metadata, so
    TF's loaders revive it generically (its functions, variables and signatures are untouched).
    Returns how many objects changed."""
    cleared = 0
    for meta_graph in proto.meta_graphs:
        for obj in meta_graph.object_graph_def.nodes:
            if obj.WhichOneof("kind") != "user_object":
                continue
            if obj.user_object.identifier in KERAS_OBJECT_IDENTIFIERS or obj.user_object.metadata:
                obj.user_object.identifier = GENERIC_USER_OBJECT
                obj.user_object.metadata = ""
                cleared += 1
    return cleared


def metadata_strings(proto: saved_model_pb2.SavedModel, keras: message.Message | None) -> Iterator[
        tuple[str, str, message.Message, str]]:
    """(file, label, holder, field) of every Keras metadata JSON string: keras_metadata.pb's nodes,
    and SavedObject.user_object.metadata where a writer put it in the object graph itself."""
    if keras is not None:
        for node in keras.nodes:  # type: ignore[attr-defined]
            if node.metadata:
                yield KERAS_METADATA_PB, f"nodes[node_id={node.node_id}] ({node.node_path})", node, "metadata"
    for m, meta_graph in enumerate(proto.meta_graphs):
        for i, obj in enumerate(meta_graph.object_graph_def.nodes):
            if obj.WhichOneof("kind") == "user_object" and obj.user_object.metadata:
                yield (SAVED_MODEL_PB, f"meta_graphs[{m}].object_graph_def.nodes[{i}].user_object.metadata",
                       obj.user_object, "metadata")

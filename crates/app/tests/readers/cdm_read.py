"""Reads every table of a lakecdp environment folder the way other tools do: the CDM SDK
(commondatamodel-objectmodel) loads each CDM folder's document and resolves every
partition to a file, and pyarrow reads the files.

    python cdm_read.py ENV_FOLDER model.json|default.manifest.cdm.json

ENV_FOLDER is mounted as the SDK's `local` namespace. Prints one JSON object: for each CDM
folder (relative to ENV_FOLDER) that holds the named document, each entity's columns (from
the SDK) and the rows pyarrow read from its partitions. Every SDK error is printed and
makes the exit code non-zero.
"""

import asyncio
import json
import os
import sys

import pyarrow.csv
import pyarrow.parquet
from cdm.enums import CdmStatusLevel
from cdm.objectmodel import CdmCorpusDefinition
from cdm.storage import LocalAdapter


def partition_format(partition):
    """`csv` or `parquet`, and whether a CSV file has a header row, from the partition's
    `is.partition.format.*` trait; `None` when it has none (model.json cannot state
    Parquet)."""
    for trait in partition.exhibits_traits:
        name = trait.fetch_object_definition_name()
        if name == "is.partition.format.CSV":
            header = True
            for arg in trait.arguments:
                if arg.name == "columnHeaders":
                    header = str(arg.value).lower() == "true"
            return "csv", header
        if name == "is.partition.format.parquet":
            return "parquet", False
    # a model.json partition without CSV settings: read by its file's extension
    return None, False


def read_rows(path, fmt, header, columns):
    if fmt == "parquet" or (fmt is None and path.endswith(".parquet")):
        table = pyarrow.parquet.read_table(path)
    else:
        options = pyarrow.csv.ReadOptions(
            column_names=None if header else columns, autogenerate_column_names=False
        )
        convert = pyarrow.csv.ConvertOptions(column_types={c: pyarrow.string() for c in columns})
        table = pyarrow.csv.read_csv(path, read_options=options, convert_options=convert)
    if list(table.column_names) != columns:
        raise SystemExit(f"{path}: columns {table.column_names}, the document says {columns}")
    return table.num_rows


async def read_folder(corpus, errors, folder, document):
    manifest = await corpus.fetch_object_async(f"local:/{folder}/{document}")
    if manifest is None:
        raise SystemExit(f"the CDM SDK could not load {folder}/{document}: {errors}")
    out = {}
    for entity_ref in manifest.entities:
        entity = await corpus.fetch_object_async(entity_ref.entity_path, manifest)
        if entity is None:
            raise SystemExit(f"{folder}: entity {entity_ref.entity_name} does not resolve: {errors}")
        columns = [a.name for a in entity.attributes]
        rows = 0
        for partition in entity_ref.data_partitions:
            corpus_path = corpus.storage.create_absolute_corpus_path(partition.location, manifest)
            path = corpus.storage.corpus_path_to_adapter_path(corpus_path) if corpus_path else None
            if not path or not os.path.isfile(path):
                raise SystemExit(
                    f"{folder}: partition {partition.location!r} of {entity_ref.entity_name} "
                    f"resolves to {path!r}, no file: {errors}"
                )
            fmt, header = partition_format(partition)
            rows += read_rows(path, fmt, header, columns)
        out[entity_ref.entity_name] = {"columns": columns, "rows": rows}
    return out


async def main(root, document):
    corpus = CdmCorpusDefinition()
    errors = []
    corpus.set_event_callback(lambda level, message: errors.append(message), CdmStatusLevel.ERROR)
    corpus.storage.mount("local", LocalAdapter(root))
    corpus.storage.default_namespace = "local"
    folders = {}
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "_lakecdp")
        if document in files:
            folder = os.path.relpath(current, root).replace(os.sep, "/")
            folders[folder] = await read_folder(corpus, errors, folder, document)
    print(json.dumps(folders, sort_keys=True))
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main(os.path.abspath(sys.argv[1]), sys.argv[2]))

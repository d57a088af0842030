"""`python -m core export-model --project NAME --run ID [--to DIR] [--onnx]`: ship a run as a bundle."""

from __future__ import annotations

from typing import Any

from core import store


def cli_arguments(parser: Any) -> None:
    """Options of export-model."""
    parser.add_argument("--project", required=True, help="project name")
    parser.add_argument("--run", required=True, help="id of a completed run")
    parser.add_argument(
        "--to", default=None, help="a new (or empty) folder; default: the workspace's exports/model-RUN_ID"
    )
    parser.add_argument("--onnx", action="store_true", help="write the ONNX export instead of the bundle")


def cli_main(args: Any) -> dict[str, Any]:
    """Write the bundle (or the ONNX export) and print where it went and its check."""
    from core.export import bundle, onnx

    conn = store.connect()
    try:
        project = store.project_id(conn, args.project)
        if args.onnx:
            dest = bundle.destination(
                conn, args.to or f"onnx-{args.run}", args.run, explicit=args.to is not None
            )
            return onnx.export_onnx(conn, args.run, dest, project=project)
        dest = bundle.destination(conn, args.to, args.run, explicit=args.to is not None)
        out = bundle.export_bundle(conn, args.run, dest, project=project)
    finally:
        conn.close()
    return {"path": out["path"], "kind": out["kind"], **out["check"]}

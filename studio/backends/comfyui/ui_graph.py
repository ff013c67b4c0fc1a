"""An API-format workflow drawn as the graph ComfyUI's editor saves (the `workflow` text of its PNGs, version 0.4):
nodes with positions, input and output slots, widget values in the node's input order, and links as
[id, from node, from slot, to node, to slot, type].

Made from the node definitions the server itself gave (`/object_info/{node}`), so slot names, types and widget order
are the server's. Dropped into ComfyUI, a PNG of ours opens as this graph.
"""

from __future__ import annotations

from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
COLUMN, ROW = 340, 220  # canvas spacing: one column per depth in the graph


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _is_widget(spec: Any) -> bool:
    return isinstance(spec, (list, tuple)) and bool(spec) and (isinstance(spec[0], list) or spec[0] in WIDGET_TYPES)


def _input_specs(node_def: dict) -> list[tuple[str, Any]]:
    inputs = node_def.get("input", {})
    order = node_def.get("input_order") or {group: list(inputs.get(group, {}) or {}) for group in ("required", "optional")}
    return [(name, (inputs.get(group, {}) or {}).get(name)) for group in ("required", "optional")
            for name in order.get(group, [])]


def _depths(graph: dict[str, dict]) -> dict[str, int]:
    depth: dict[str, int] = {}

    def of(node_id: str, seen: tuple = ()) -> int:
        if node_id not in depth:
            links = [v[0] for v in graph[node_id]["inputs"].values() if _is_link(v) and v[0] in graph]
            depth[node_id] = 0 if not links or node_id in seen else 1 + max(of(n, seen + (node_id,)) for n in links)
        return depth[node_id]

    for node_id in graph:
        of(node_id)
    return depth


def ui_workflow(graph: dict[str, dict], node_defs: dict[str, dict]) -> dict:
    """The editor's graph for an API-format workflow whose node classes are all in `node_defs`."""
    depth = _depths(graph)
    rows: dict[int, int] = {}
    nodes: dict[str, dict] = {}
    for order, node_id in enumerate(sorted(graph, key=lambda n: (depth[n], int(n) if n.isdigit() else n))):
        class_type = graph[node_id]["class_type"]
        definition = node_defs.get(class_type, {})
        row = rows[depth[node_id]] = rows.get(depth[node_id], -1) + 1
        outputs = definition.get("output", [])
        names = definition.get("output_name", outputs)
        nodes[node_id] = {
            "id": int(node_id), "type": class_type, "pos": [depth[node_id] * COLUMN, row * ROW], "size": [300, 160],
            "flags": {}, "order": order, "mode": 0, "inputs": [],
            "outputs": [{"name": names[i] if i < len(names) else t, "type": t, "links": [], "slot_index": i}
                        for i, t in enumerate(outputs)],
            "properties": {"Node name for S&R": class_type}, "widgets_values": [],
        }
    links = []
    for node_id, node in graph.items():
        ui = nodes[node_id]
        for name, spec in _input_specs(node_defs.get(node["class_type"], {})):
            value = node["inputs"].get(name)
            if _is_link(value) and value[0] in nodes:
                source = nodes[value[0]]
                kind = source["outputs"][value[1]]["type"] if value[1] < len(source["outputs"]) else "*"
                link_id = len(links) + 1
                links.append([link_id, int(value[0]), value[1], int(node_id), len(ui["inputs"]), kind])
                ui["inputs"].append({"name": name, "type": kind, "link": link_id})
                if value[1] < len(source["outputs"]):
                    source["outputs"][value[1]]["links"].append(link_id)
            elif _is_widget(spec):
                ui["widgets_values"].append(value)
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if options.get("control_after_generate"):
                    ui["widgets_values"].append("fixed")  # the seed stays what made this picture
                if options.get("image_upload"):
                    ui["widgets_values"].append("image")  # LoadImage's upload button keeps a value too
            elif spec is not None:  # a socket left unconnected (an optional one)
                ui["inputs"].append({"name": name, "type": spec[0] if isinstance(spec, (list, tuple)) else "*",
                                     "link": None})
    ordered = [nodes[node_id] for node_id in sorted(nodes, key=lambda n: nodes[n]["order"])]
    return {"last_node_id": max((n["id"] for n in ordered), default=0), "last_link_id": len(links),
            "nodes": ordered, "links": links, "groups": [], "config": {}, "extra": {}, "version": 0.4}


def check_ui_workflow(workflow: dict, node_defs: dict[str, dict]) -> list[str]:
    """Problems that would keep ComfyUI's editor from loading the graph (empty: none). Used by the tests."""
    problems = []
    by_id = {node["id"]: node for node in workflow.get("nodes", [])}
    for link in workflow.get("links", []):
        link_id, source, source_slot, target, target_slot, kind = link
        if source not in by_id or target not in by_id:
            problems.append(f"link {link_id} joins a missing node")
            continue
        outputs = node_defs.get(by_id[source]["type"], {}).get("output", [])
        if source_slot >= len(outputs) or outputs[source_slot] != kind:
            problems.append(f"link {link_id}: node {source} has no {kind} output at slot {source_slot}")
        slot = by_id[target]["inputs"][target_slot] if target_slot < len(by_id[target]["inputs"]) else {}
        if slot.get("link") != link_id:
            problems.append(f"link {link_id}: node {target}'s input {target_slot} doesn't name it")
    for node in by_id.values():
        if node["type"] not in node_defs:
            problems.append(f"node {node['id']}: {node['type']} is not a node of this server")
    return problems

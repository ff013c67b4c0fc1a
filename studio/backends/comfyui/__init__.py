"""ComfyUI servers as a backend: recipes become ComfyUI workflows, jobs are shared among servers (pool.py).

workflow.py (recipe -> API-format graph) · ui_graph.py (the editor's graph for the PNG) · info.py (what a server
has) · http.py · link.py (one server's connection and prompts) · outputs.py (uploads, fetched outputs, errors) ·
pool.py (the shared queue) · backend.py (the backend interface, Test connection).
"""

from studio.backends.comfyui.backend import ComfyUIBackend

__all__ = ["ComfyUIBackend"]

"""The main window and the one place that wires state, worker, history and panels together."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QWidget,
)

from studio import __version__, media, paths
from studio.backends.router import Backends
from studio.core.catalog import read_catalog
from studio.core.jobs import Job
from studio.core.recipe import RecipeError
from studio.library.export import recipe_from_file
from studio.library.history import History, HistoryUnavailable, open_history
from studio.state import State
from studio.widgets.progress import JobQueueView

log = logging.getLogger(__name__)
ORGANISATION = "LatentStudio"
GALLERY_PANEL = "studio.panels.gallery:GalleryPanel"
DEVICES = [("Automatic (best available)", "auto"), ("NVIDIA GPU (CUDA)", "cuda"), ("Apple GPU (MPS)", "mps"), ("CPU", "cpu")]


def tab_list() -> list[tuple[str, str]]:
    """(name, label) of each tab, in order: one per medium (studio/media.py), then the Gallery."""
    return [(medium.name, medium.label) for medium in media.MEDIA.values()] + [("gallery", "Gallery")]


def open_filter() -> str:
    """File › Open's filter: every suffix a medium's outputs are read from (studio/media.py), and .json recipes."""
    suffixes = " ".join(f"*{suffix}" for suffix in [*media.readers(), ".json"])
    return f"Outputs and recipes ({suffixes});;All files (*)"


class MainWindow(QMainWindow):
    def __init__(self, state: State, history: History, worker) -> None:
        super().__init__()
        self.state, self.history, self.worker = state, history, worker
        self.setWindowTitle("Latent Studio")
        self.setWindowIcon(app_icon())
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.tabBar().setDrawBase(False)
        # Panels are built the first time they are shown: start-up pays for one panel, not five.
        self.panels: dict[str, QWidget] = {}
        tabs = tab_list()
        self.tab_names = [name for name, _label in tabs]
        for name, label in tabs:
            placeholder = QWidget()
            placeholder.setObjectName(name)
            self.tabs.addTab(placeholder, label)
        self.tabs.currentChanged.connect(lambda index: self.panel(self.tab_names[index]))
        self.setCentralWidget(self.tabs)
        self._build_queue_dock()
        self._build_status_bar()
        self._build_menus()
        self._build_shortcuts()
        state.error_raised.connect(self._on_error)
        state.restore_requested.connect(self.show_panel)
        state.device_changed.connect(self.device_label.setText)
        state.busy_changed.connect(lambda busy: self.busy_label.setText("working…" if busy else "idle"))
        state.output_added.connect(self._on_output)
        self.resize(1280, 820)

    # --- building ----------------------------------------------------------------------------

    def _build_queue_dock(self) -> None:
        self.queue = JobQueueView(self.state)
        dock = QDockWidget("Jobs", self)
        dock.setObjectName("jobsDock")
        dock.setWidget(self.queue)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        dock.setMinimumWidth(220)  # with a panel beside it, the window fits half a 1080p screen (960 px)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.resizeDocks([dock], [250], Qt.Orientation.Horizontal)
        self.queue_dock = dock

    def _build_status_bar(self) -> None:
        self.device_label = QLabel(self.state.device_label)
        self.device_label.setObjectName("device")
        self.device_label.setToolTip("The device and number format jobs run with (Settings › Device to change)")
        self.busy_label = QLabel("idle")
        self.statusBar().addPermanentWidget(self.busy_label)
        self.statusBar().addPermanentWidget(self.device_label)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open recipe or output…", self.open_recipe, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open &output folder", self.open_output_folder)
        self._action(file_menu, "&Models…", self.show_model_manager, "Ctrl+Shift+M")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        settings_menu = self.menuBar().addMenu("&Settings")
        device_menu = settings_menu.addMenu("&Device")
        self.device_group = QActionGroup(self)
        current = QSettings().value("device", "auto")
        for label, value in DEVICES:
            action = QAction(label, self, checkable=True)
            action.setChecked(value == current)
            action.setData(value)
            action.triggered.connect(lambda _=False, v=value: self.set_device(v))
            self.device_group.addAction(action)
            device_menu.addAction(action)
        self._action(settings_menu, "Output &folder…", self.choose_output_folder)
        self._action(settings_menu, "&Servers…", self.edit_servers)

        engine_menu = self.menuBar().addMenu("&Engine")
        self._action(engine_menu, "&Force stop the running job", self.state.force_stop)
        self._action(engine_menu, "Free &memory (restart the engine)", self.free_memory)

        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Welcome / getting started", lambda: self.show_welcome())
        self._action(help_menu, "Model &licences", self.show_licences)
        self._action(help_menu, "&About Latent Studio", self.show_about)

    def show_model_manager(self) -> None:
        from studio.widgets.model_manager import ModelManagerDialog

        def use(ref: str) -> None:
            self.state.image.update({"backend": "", "model": ref})
            for index in range(self.tabs.count()):
                if getattr(self.tabs.widget(index), "modality", "") == "image":
                    self.tabs.setCurrentIndex(index)

        dialog = ModelManagerDialog(self.state.model_library, self, use_model=use)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    def _action(self, menu, text: str, callback, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(callback)
        menu.addAction(action)
        return action

    def _build_shortcuts(self) -> None:
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, activated=self.generate_current)
        QShortcut(QKeySequence("Escape"), self, activated=lambda: self.state.cancel(None))

    # --- actions -----------------------------------------------------------------------------

    def panel(self, name: str) -> QWidget:
        """The panel called `name`, built now if this is its first use."""
        if name not in self.panels:
            # imported here too: a panel's module (and its widgets) loads with its first use
            panel_class = media.load(media.MEDIA[name].panel if name in media.MEDIA else GALLERY_PANEL)
            panel = self.panels[name] = panel_class(self.state, self.history)  # every panel: (state, history)
            index = self.tab_names.index(name)
            current = self.tabs.currentIndex()
            self.tabs.blockSignals(True)
            label = self.tabs.tabText(index)
            self.tabs.removeTab(index)
            self.tabs.insertTab(index, panel, label)
            self.tabs.setCurrentIndex(current)
            self.tabs.blockSignals(False)
        return self.panels[name]

    def generate_current(self) -> None:
        panel = self.tabs.currentWidget()
        if hasattr(panel, "generate"):
            panel.generate()

    def show_panel(self, name: str) -> None:
        if name in self.tab_names:
            self.tabs.setCurrentWidget(self.panel(name))

    def open_recipe(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a recipe or an output", str(self.history.outputs_dir),
            open_filter())
        if path:
            self.load_recipe_file(Path(path))

    def load_recipe_file(self, path: Path) -> bool:
        image = self.panel("image") if "image" in self.tab_names else None
        if Path(path).suffix.lower() in (".png", ".jpg", ".jpeg", ".webp") and hasattr(image, "load_settings_from"):
            # as a drop does: other tools' settings are mapped and said, and a missing prompt never empties the box
            try:
                loaded = bool(image.load_settings_from(Path(path)))
            except Exception as exc:  # noqa: BLE001 - a damaged image is a message, as recipe_from_file makes it
                self._on_error("file", f"{Path(path).name}: not a readable file ({type(exc).__name__}: {exc})")
                return False
            if loaded:
                self.state.output_restored.emit("image", [Path(path)])  # the picture too, not only its settings
            return loaded
        try:
            recipe = recipe_from_file(path)
        except RecipeError as exc:  # recipe_from_file turns every reader's failure into one (library/export.py)
            self._on_error("file", str(exc))
            return False
        self.state.restore_output(recipe, [Path(path)])
        self.statusBar().showMessage(f"Loaded the recipe from {path.name}", 5000)
        return True

    def open_output_folder(self) -> None:
        folder = self.history.outputs_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)  # a chosen folder may not exist (yet, or any more)
        except OSError as exc:
            self._on_error("file", f"cannot create the output folder {folder}: {exc}")
            return
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self.statusBar().showMessage(f"No file manager answered; the outputs are in {folder}", 15000)

    def edit_servers(self) -> None:
        """Settings › Servers…: on Save, every enabled server is connected again (add_servers)."""
        from studio.core.servers import load_servers
        from studio.widgets.servers_dialog import ServersDialog

        dialog = ServersDialog(load_servers(), find_probe, self)
        if dialog.exec():
            _say_server_problems(self, add_servers(self.worker, self.history))

    def choose_output_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Where new outputs are saved", str(self.history.outputs_dir))
        if folder:
            self.history.outputs_dir = Path(folder)
            self.worker.set_outputs_dir(folder)
            QSettings().setValue("output_folder", folder)
            try:
                paths.remember_output_folder(Path(folder))  # so `python -m studio generate` saves there too
            except OSError as exc:
                self.statusBar().showMessage(f"Using {folder} now, but it could not be remembered: {exc}", 15000)
                return
            self.statusBar().showMessage(f"New outputs go to {folder}", 5000)

    def set_device(self, value: str) -> None:
        QSettings().setValue("device", value)
        self.worker.set_device_override(value)
        # the worker re-picks the device now; the status bar's device label then says what is really used
        # (e.g. "CPU … (CUDA was asked for but is not available)"), the menu keeps the preference
        self.statusBar().showMessage(f"Device preference: {value}. The device in use is shown on the right.", 8000)

    def free_memory(self) -> None:
        """The engine process restarts, so the memory its models held really goes back to the system."""
        self.worker.free_memory()
        running = getattr(self.worker, "running", None)
        when = "after the running job" if running is not None else "now"
        self.statusBar().showMessage(f"The engine restarts {when}: its models are unloaded; the next job reloads "
                                     "what it needs.", 8000)

    def show_welcome(self) -> None:
        from studio.widgets.welcome import WelcomeDialog

        WelcomeDialog(str(self.history.outputs_dir), self).exec()

    def welcome_if_first_run(self) -> None:
        from studio.widgets.welcome import should_show_welcome

        if should_show_welcome():
            self.show_welcome()

    def show_licences(self) -> None:
        lines = []
        for model in read_catalog():
            where = "built in" if model.get("builtin") else "fetch when online"
            lines.append(f"<b>{model['name']}</b> ({where}): {model.get('licence', '?')}<br><i>{model.get('about', '')}</i>")
        lines.append("Each built-in model's MODEL_CARD.md in the models folder has data, licences and training figures.")
        QMessageBox.information(self, "Model licences", "<br><br>".join(lines))

    def show_about(self) -> None:
        QMessageBox.about(
            self, "About Latent Studio",
            f"<h3>Latent Studio {__version__}</h3><p>Explore image, text and music generators in one app. "
            f"Outputs and history: {paths.user_data_dir()}</p>")

    def _on_error(self, modality: str, message: str) -> None:
        self.statusBar().showMessage(f"{modality}: {message}", 15000)

    def _on_output(self, artifact) -> None:
        if artifact.files:
            self.statusBar().showMessage(f"Saved {artifact.files[0].name}", 5000)

    # --- persistence -------------------------------------------------------------------------

    def restore_settings(self) -> None:
        settings = QSettings()
        geometry = settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        window_state = settings.value("window/state")
        if window_state is not None:
            self.restoreState(window_state)
        try:
            self.tabs.setCurrentIndex(int(settings.value("window/tab", 0)))
        except (TypeError, ValueError, OverflowError):
            pass
        # Every saved value is checked against its medium's settings class before a panel is built on it: one
        # poisoned value (a NaN a bad file once put there) is dropped with a message, and the app always starts.
        problems = []
        for name, panel_state in self.state.panels.items():
            saved = settings.value(f"panels/{name}")
            if not saved:
                continue
            try:
                values = json.loads(saved)
            except (TypeError, ValueError, RecursionError):
                values = None
            if not isinstance(values, dict):
                problems.append(f"{name}: unreadable saved settings")  # keep the defaults rather than fail to start
                continue
            checked, dropped = panel_state.checked(values)
            panel_state.update(checked)
            problems += [f"{name}: {line}" for line in dropped]
        self.panel(self.tab_names[self.tabs.currentIndex()])
        if problems:
            log.warning("saved settings left out: %s", "; ".join(problems))
            self.statusBar().showMessage(f"{len(problems)} saved setting(s) were unreadable and were reset: "
                                         + "; ".join(problems[:2]), 20000)

    def save_settings(self) -> None:
        settings = QSettings()
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState())
        settings.setValue("window/tab", self.tabs.currentIndex())
        for name, panel_state in self.state.panels.items():
            settings.setValue(f"panels/{name}", json.dumps(panel_state.values()))

    def closeEvent(self, event) -> None:
        self.save_settings()
        self.worker.stop()
        super().closeEvent(event)


def app_icon() -> QIcon:
    icon = QIcon()
    for png in sorted((paths.assets_dir() / "icons").glob("latent-studio-*.png")):
        icon.addFile(str(png))
    return icon


def load_theme(app: QApplication) -> None:
    theme = paths.assets_dir() / "theme.qss"
    if theme.exists():
        app.setStyleSheet(theme.read_text(encoding="utf-8"))


def make_local_engine(history: History, device: str):
    """The local engine: its own process (the default), or a thread of this one with LATENT_STUDIO_ENGINE=thread
    (for debugging with a plain debugger; a crash of a model then takes the window too)."""
    if os.environ.get("LATENT_STUDIO_ENGINE") == "thread":
        from studio.backends.thread import ThreadEngine

        return ThreadEngine(history=history, device_override=device)
    from studio.backends.engine_process import EngineConfig
    from studio.backends.local import LocalEngine

    threads = os.environ.get("LATENT_STUDIO_THREADS")
    config = EngineConfig(history_db=str(history.db_path), outputs_dir=str(history.outputs_dir), device_override=device,
                          threads=int(threads) if threads and threads.isdigit() else None)
    return LocalEngine(config)


def make_backend(history: History, device: str) -> Backends:
    """This computer's engine, with the servers from Settings › Servers beside it (added once the window shows)."""
    return Backends(make_local_engine(history, device))


def find_probe(kind: str):
    """The "Test connection" of a kind of server: its backend's `probe(config, token)`, or None when that backend
    isn't part of this version (Settings › Servers says so)."""
    from studio.core.servers import KINDS

    try:
        return getattr(media.load(KINDS[kind]), "probe", None)
    except (ImportError, AttributeError, KeyError):
        return None


def add_servers(backends: Backends, history: History) -> list[str]:
    """(Re)connect the enabled servers of Settings › Servers beside this computer's engine; one line per problem."""
    from studio.core.servers import KINDS, load_servers

    problems = []
    for name in list(backends.remote):
        backends.remove(name)
    for server in load_servers():
        if not server.enabled:
            continue
        try:
            backend_class = media.load(KINDS[server.kind])
            backends.add(server.name, backend_class(server, history))
        except Exception as exc:  # noqa: BLE001 - one bad server entry must not keep the app from starting
            log.exception("server %s not added", server.name)
            problems.append(f"{server.name}: {type(exc).__name__}: {exc}")
    return problems


def connect_backend(state: State, backend) -> None:
    """Messages into state's one handler; state's requests out to the backend; its model lists into state."""
    backend.message.connect(state.handle_message)
    backend.models_changed.connect(lambda: state.set_backend_models(backend.available_models()))
    backend.cancel_unanswered.connect(state.offer_force_stop)
    state.submit_requested.connect(backend.submit)
    state.cancel_requested.connect(lambda job_id: backend.cancel(job_id))
    state.force_stop_requested.connect(backend.force_stop)


def create_window(app: QApplication, warm_up: bool = True) -> MainWindow:
    """Build history, backend, state and window; the engine starts once the window has been painted."""
    settings = QSettings()
    # The preferences file is shared with the CLI; QSettings held the choice in earlier versions.
    outputs = paths.saved_output_folder() or Path(settings.value("output_folder", str(paths.outputs_dir())))
    history, history_note = open_history(paths.history_db_path(), outputs)
    history.recover()  # after a kill: orphan outputs adopted, temp files removed (library/recover.py)
    backend = make_backend(history, str(settings.value("device", "auto")))
    state = State()
    connect_backend(state, backend)
    window = MainWindow(state, history, backend)
    window.restore_settings()
    load_theme(app)  # after building: one style pass over the finished window, not one per widget
    # After the first paint: the engine process starts (and, with warm_up, imports torch and picks the device)
    # while the user reads the window; the first Generate then does not pay for it.
    QTimer.singleShot(0, backend.start)
    QTimer.singleShot(0, lambda: _say_server_problems(window, add_servers(backend, history)))
    if warm_up:
        QTimer.singleShot(0, lambda: state.submit(Job("device.warmup", save=False)))
    if history_note:
        log.warning(history_note)
        QTimer.singleShot(0, lambda: QMessageBox.warning(window, "History", history_note))
    return window


def _say_server_problems(window: MainWindow, problems: list[str]) -> None:
    if problems:
        window.statusBar().showMessage("Servers not connected: " + "; ".join(problems), 20000)


def main(argv: list[str] | None = None, open_paths: list[Path] | None = None) -> int:
    from studio.crash import install_excepthook, setup_logging

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName("Latent Studio")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("latent-studio")  # taskbars match the window to the .desktop entry
    app.setWindowIcon(app_icon())
    try:
        setup_logging()
    except OSError as exc:  # a read-only user folder: log to stderr only, and still start
        print(f"Latent Studio: cannot write its log file ({exc})", file=sys.stderr)
    install_excepthook()
    try:
        window = create_window(app)
    except HistoryUnavailable as exc:
        QMessageBox.critical(None, "Latent Studio", str(exc))
        return 1
    window.show()
    if os.environ.get("LATENT_STUDIO_QUIT_WHEN_SHOWN"):
        # benchmarks/bundle.py times a bundled or installed app from launch to a painted window
        app.processEvents()
        print("window shown", flush=True)
        window.worker.stop()  # not close(): a timing run must not overwrite the user's saved window and settings
        return 0
    QTimer.singleShot(0, window.welcome_if_first_run)
    QTimer.singleShot(0, window.state.model_library.refresh)  # model folders, hub cache, online: off the GUI thread
    for path in open_paths or []:  # files the desktop asked us to open: their recipes, into their panels
        QTimer.singleShot(0, lambda path=path: window.load_recipe_file(path))
    return app.exec()

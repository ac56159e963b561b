"""The service's GitOps owner (README "GitOps (Argo CD and Flux)"), one line
under the banner: who deploys it from git, its sync policy and last synced
revision, and whether a plain rollback would be undone. Fed by the platform
extras worker after every refresh; hidden when nothing owns the service."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from ..updates import set_content


class OwnerStrip(Static):
    """One line naming the selected service's Argo CD Application or Flux Kustomization."""

    def show(self, owner: object | None, error: str | None = None) -> None:
        """Show `owner` (a `console.gitops.Owner`); hidden when nothing owns the service."""
        self.display = owner is not None or error is not None
        if error is not None and owner is None:
            set_content(self, Content.styled(error, "$sev-warning"))
            return
        if owner is None:
            return
        header = owner.header()  # type: ignore[attr-defined]
        if owner.self_healing:  # type: ignore[attr-defined]
            set_content(self, Content.assemble(("⟲ GitOps: ", "bold $sev-warning"), (header, "bold"), (
                " — a plain rollback would be put back; the console pauses it first.", "$sev-muted")))
        else:
            set_content(self, Content.assemble(("GitOps: ", "bold"), (header, "")))

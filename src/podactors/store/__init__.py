from podactors.store.fs import FsStore

__all__ = ["FsStore"]

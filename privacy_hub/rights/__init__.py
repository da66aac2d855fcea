"""Data subject rights as the hub carries them out: ``dsar`` wired to this application.

``adapters`` implements the ports of ``dsar/ports.py`` with the vault and the outbox;
``exports`` builds the access and portability archives.
"""

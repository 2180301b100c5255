"""The seed's `tenant_whatsapp_config` table: the database door, migrations, the desired row
(pure) and its sync, token encryption and re-encryption (rekey), drift repair, the audit
trail, and the `whatsapp-credentials` CLI the legacy platform reads rows with."""

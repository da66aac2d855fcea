"""A typical e-commerce purpose catalogue, installed by `privacy-hub init --demo`, with
German texts for German customers (Art. 12(1))."""

from __future__ import annotations

from typing import Any

ECOMMERCE: list[dict[str, Any]] = [
    {"key": "orders.fulfilment", "title": "Order fulfilment and delivery",
     "description": "Process your orders, take payment, deliver them (checking your age for "
                    "age-restricted products) and handle returns.",
     "translations": {"de": {
         "title": "Bestellabwicklung und Lieferung",
         "description": (
             "Wir bearbeiten Ihre Bestellungen, wickeln die Zahlung ab, liefern die Ware (bei "
             "Produkten mit Altersgrenze prüfen wir Ihr Alter) und bearbeiten Rücksendungen.")}},
     "legal_basis": "contract",
     "fields": ["email", "first_name", "last_name", "phone", "address", "birth_date"],
     "retention_days": 1095,
     "data_categories": ["contact data", "address", "order history", "date of birth"],
     "recipients": ["payment provider", "carrier"], "dpv": "dpv:DeliveryOfGoods"},
    {"key": "customer_service", "title": "Customer service",
     "description": "Answer your questions and complaints about orders and your account.",
     "translations": {"de": {
         "title": "Kundenservice",
         "description": (
             "Wir beantworten Ihre Fragen und Beschwerden zu Bestellungen und zu Ihrem "
             "Kundenkonto.")}},
     "legal_basis": "contract", "fields": ["email", "first_name", "last_name", "phone"],
     "retention_days": 730, "data_categories": ["contact data", "correspondence"],
     "recipients": ["customer-service"], "dpv": "dpv:CustomerCare",
     "data_subject_categories": ["customers", "people who contact customer service"]},
    {"key": "invoicing", "title": "Invoicing and accounting records",
     "description": "Keep invoices and accounting records as commercial and tax law requires.",
     "translations": {"de": {
         "title": "Rechnungen und Buchhaltungsunterlagen",
         "description": (
             "Wir bewahren Rechnungen und Buchhaltungsunterlagen so lange auf, wie es das "
             "Handels- und Steuerrecht vorschreibt.")}},
     "legal_basis": "legal_obligation",
     "fields": ["first_name", "last_name", "address", "external_id"],
     "retention_days": 3650, "data_categories": ["identity", "address", "invoices"],
     "recipients": ["tax advisor", "tax authority"], "dpv": "dpv:LegalCompliance"},
    {"key": "fraud_prevention", "title": "Fraud prevention",
     "description": "Detect and prevent payment fraud and account abuse.",
     "translations": {"de": {
         "title": "Betrugsprävention",
         "description": (
             "Wir erkennen und verhindern Zahlungsbetrug und den Missbrauch von Kundenkonten.")}},
     "legal_basis": "legitimate_interests",
     "lia_ref": "LIA-2026-03: fraud prevention balancing test, DPO file 12",
     "fields": ["email", "phone", "address"], "retention_days": 365,
     "data_categories": ["contact data", "address", "order history", "device data"],
     "recipients": ["fraud-screening provider"], "dpv": "dpv:FraudPreventionAndDetection",
     "automated_decisions": {
         "logic": "A score from the order's value, the delivery and billing addresses and "
                  "the device, compared with patterns of known fraud.",
         "significance": "An order with a high score is held for a person to check before "
                         "it ships; no order is refused without that check.",
         "consequences": "A held order ships later, or is cancelled after the check."},
     "data_subject_categories": ["customers", "people who order as guests"]},
    {"key": "marketing.email", "title": "Newsletter and offers by email",
     "description": "Send you our newsletter and personalised offers by email.",
     "translations": {"de": {
         "title": "Newsletter und Angebote per E-Mail",
         "description": (
             "Wir senden Ihnen unseren Newsletter und persönliche Angebote per E-Mail.")}},
     "legal_basis": "consent", "direct_marketing": True, "double_opt_in": True,
     "fields": ["email", "first_name", "locale"], "retention_days": 730,
     "consent_lifetime_days": 730, "data_categories": ["contact data", "preferences"],
     "recipients": ["newsletter"], "dpv": "dpv:DirectMarketing"},
    {"key": "marketing.email_customers", "title": "Offers on similar products by email",
     "description": "Email you offers on products like the ones you bought from us. You can "
                    "opt out at checkout and in every email.",
     "translations": {"de": {
         "title": "Angebote zu ähnlichen Produkten per E-Mail",
         "description": (
             "Wir senden Ihnen per E-Mail Angebote zu Produkten, die Ihren Einkäufen bei uns "
             "ähneln. Sie können dem an der Kasse und in jeder E-Mail widersprechen.")}},
     "legal_basis": "legitimate_interests", "direct_marketing": True, "soft_opt_in": True,
     "lia_ref": "LIA-2026-05: soft opt-in for customers (ePrivacy Art. 13(2)), DPO file 14",
     "fields": ["email", "first_name", "locale"], "retention_days": 730,
     "data_categories": ["contact data", "order history"], "recipients": ["newsletter"],
     "dpv": "dpv:DirectMarketing"},
    {"key": "marketing.sms", "title": "Offers by text message",
     "description": "Send you offers and reminders by SMS.",
     "translations": {"de": {
         "title": "Angebote per SMS",
         "description": (
             "Wir senden Ihnen Angebote und Erinnerungen per SMS.")}},
     "legal_basis": "consent", "direct_marketing": True, "fields": ["phone", "first_name"],
     "retention_days": 730, "data_categories": ["contact data"], "recipients": ["sms-gateway"],
     "dpv": "dpv:DirectMarketing"},
    {"key": "personalisation.recommendations", "title": "Personalised recommendations",
     "description": "Recommend products based on what you viewed and bought (profiling).",
     "translations": {"de": {
         "title": "Persönliche Produktempfehlungen",
         "description": (
             "Wir empfehlen Ihnen Produkte auf Grundlage dessen, was Sie sich angesehen und "
             "gekauft haben (Profiling).")}},
     "legal_basis": "consent", "fields": ["first_name", "locale", "attributes"],
     "retention_days": 365, "consent_lifetime_days": 365,
     "data_categories": ["browsing behaviour", "order history", "inferred preferences"],
     "recipients": ["recommendations"], "dpv": "dpv:ProvidePersonalisedRecommendations",
     "automated_decisions": {
         "logic": "Products are ranked by how often customers who viewed or bought the same "
                  "products bought them too, weighted towards your recent views.",
         "significance": "Decides which products you are shown first in the shop and in "
                         "emails; it never decides prices, payment options or whether you "
                         "may order.",
         "consequences": "You may see some products more and others less often."},
     "risk": "high", "dpia_ref": "DPIA-2026-02: personalised recommendations, DPO file 9"},
    {"key": "analytics.behaviour", "title": "Behavioural analytics",
     "description": "Measure visits, product views and carts to improve the shop.",
     "translations": {"de": {
         "title": "Nutzungsanalyse",
         "description": (
             "Wir messen Besuche, Produktaufrufe und Warenkörbe, um den Shop zu verbessern.")}},
     "legal_basis": "consent", "cookie_category": "statistics", "fields": [],
     "retention_days": 395, "consent_lifetime_days": 395,
     "data_categories": ["browsing behaviour", "device data"], "recipients": ["analytics"],
     "dpv": "dpv:ImproveExistingProductsAndServices",
     "data_subject_categories": ["customers", "visitors of the shop"]},
    {"key": "advertising.partners", "title": "Advertising with partners",
     "description": "Share data with advertising partners to show you targeted ads elsewhere.",
     "translations": {"de": {
         "title": "Werbung mit Partnern",
         "description": (
             "Wir geben Daten an Werbepartner weiter, damit Ihnen auch auf anderen Websites "
             "gezielte Werbung angezeigt wird.")}},
     "legal_basis": "consent", "sale_or_sharing": True, "cookie_category": "marketing",
     "direct_marketing": True, "fields": ["email"], "retention_days": 180,
     "consent_lifetime_days": 395, "data_categories": ["contact data", "browsing behaviour"],
     "recipients": ["advertising partners (third parties)"], "dpv": "dpv:PersonalisedAdvertising",
     "transfers": [{"recipient": "advertising partners (third parties)", "country": "US",
                    "safeguard": "adequacy decision (EU-US Data Privacy Framework, "
                                 "2023/1795)"}],
     "data_subject_categories": ["customers", "visitors of the shop"]},
]

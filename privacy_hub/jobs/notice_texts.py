"""The mails the law asks for beyond a request's own steps: the acknowledgement of a
request verified at once (R-DSAR-02, Art. 12(3)), the notice of a material change of a
purpose to those whose consent it invalidates (R-CONSENT-09, Art. 7, 12(1), 13(3)), and
the Art. 14 notice for data obtained from someone other than the subject (R-DEAD-05).

The same parts as every other mail (privacy_hub/jobs/mail_parts.py), rendered by
privacy_hub/jobs/mail_texts.py.
"""

from __future__ import annotations

from privacy_hub.jobs.mail_parts import ACKNOWLEDGEMENT, HELLO, N_, Link, Template, When

#: the customer fields (privacy_hub.vault.models.PERSONAL_FIELDS) as categories of data,
#: named in a mail: ``data.categories`` lists field names, the mail their labels
FIELD_LABELS = {
    "external_id": N_("Customer number"), "email": N_("Email address"),
    "phone": N_("Phone number"), "first_name": N_("First name"), "last_name": N_("Last name"),
    "birth_date": N_("Date of birth"), "locale": N_("Language"), "address": N_("Address"),
    "attributes": N_("Other details"),
}

NOTICE_TEMPLATES: dict[str, Template] = {
    # R-DSAR-02: a request verified when it arrived (a portal session, a DPO's check) has
    # no verification mail to carry its acknowledgement: data.request_id, request_type,
    # received_at, due_at.
    "request_received": Template(
        subject=N_("We received your privacy request"),
        paragraphs=(
            HELLO,
            N_("we received your privacy request and are working on it."),
            ACKNOWLEDGEMENT,
            N_("If you did not make this request, tell us at once by replying to this "
               "message."),
        ),
    ),
    # R-CONSENT-09: a material change of a purpose the customer had consented to:
    # data.purpose_title, data.description (both in the mail's language where the purpose
    # has a translation), data.version.
    "purpose_reconsent": Template(
        subject=N_("We changed how we use your data: {{ purpose_title }}"),
        paragraphs=(
            HELLO,
            N_("we changed what we do with your data for this purpose: {{ purpose_title }}. "
               "This is what it means now:"),
            "{{ description }}",
            N_("You agreed to the earlier version. That consent does not count for the new "
               "one: we do not use your data for it unless you agree again."),
            N_("To agree again, or to see all your choices, open the privacy portal:"),
            Link(N_("Open your privacy choices")),
            N_("If you do not agree, do nothing: nothing else changes for you."),
        ),
        link="{{ base_url }}/portal/choices",
    ),
    # R-DEAD-05, Art. 14: data.source (the named source), data.categories (field names),
    # data.purposes (their titles, joined, in the mail's language).
    "art14_notice": Template(
        subject=N_("Where we got your data from"),
        paragraphs=(
            HELLO,
            N_("we received personal data about you from {{ source }}, not from you. You "
               "have the right to know what we hold and why (Art. 14 GDPR)."),
            N_("The categories of data we hold about you: {{ categories }}."),
            When("purposes", N_("What we use it for: {{ purposes }}.")),
            N_("In the privacy portal you can see this data, correct it, have it erased or "
               "restrict its use. You may also lodge a complaint with a data protection "
               "supervisory authority."),
            N_("You may object at any time, free of charge, to the use of your data for "
               "direct marketing (Art. 21 GDPR): in the privacy portal, or by replying to "
               "this message."),
            Link(N_("Open the privacy portal")),
        ),
        link="{{ base_url }}/portal/",
    ),
}

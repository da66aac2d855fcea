"""The W3C Data Privacy Vocabulary (DPV 2.0) terms a purpose may be tagged with.

A purpose's ``dpv`` names what it is for in a shared vocabulary (R-PURP-06), so records
of processing and receipts can be read by other tools. Only the purpose taxonomy's own
terms are accepted, written ``dpv:Term`` or as the IRI ``https://w3id.org/dpv#Term``.
The legal basis of a purpose maps to its GDPR Art. 6(1) term in DPV's EU GDPR extension.
"""

from __future__ import annotations

DPV = "https://w3id.org/dpv#"
GDPR = "https://w3id.org/dpv/legal/eu/gdpr#"

#: the classes of DPV 2.0's purposes module (w3c/dpv, 2.0/dpv/modules/purposes.csv)
_PURPOSE_TERMS = """
AcademicResearch AccountManagement Advertising AgeVerification CombatClimateChange
CommercialPurpose CommercialResearch CommunicationForCustomerCare CommunicationManagement
CounterMoneyLaundering Counterterrorism CreditChecking CustomerCare CustomerClaimsManagement
CustomerManagement CustomerOrderManagement CustomerRelationshipManagement
CustomerSolvencyMonitoring DataAltruism DeliveryOfGoods DirectMarketing DisputeManagement
EnforceAccessControl EnforceSecurity EstablishContractualAgreement FraudPreventionAndDetection
FulfilmentOfContractualObligation FulfilmentOfObligation HumanResourceManagement
IdentityAuthentication IdentityVerification ImproveExistingProductsAndServices
ImproveHealthcare ImproveInternalCRMProcesses ImprovePublicServices ImproveTransportMobility
IncreaseServiceRobustness InternalResourceOptimisation LegalCompliance
MaintainCreditCheckingDatabase MaintainCreditRatingDatabase MaintainFraudDatabase Marketing
MemberPartnerManagement MisusePreventionAndDetection NonCommercialPurpose
NonCommercialResearch OptimisationForConsumer OptimisationForController OptimiseUserInterface
OrganisationComplianceManagement OrganisationGovernance OrganisationRiskManagement
PaymentManagement Personalisation PersonalisedAdvertising PersonalisedBenefits
PersonnelHiring PersonnelManagement PersonnelPayment ProtectionOfIPR
ProtectionOfNationalSecurity ProtectionOfPublicSecurity ProvideEventRecommendations
ProvideOfficialStatistics ProvidePersonalisedRecommendations ProvideProductRecommendations
PublicBenefit PublicPolicyMaking PublicRelations Purpose RecordManagement RepairImpairments
RequestedServiceProvision ResearchAndDevelopment RightsFulfillment ScientificResearch
SearchFunctionalities SellDataToThirdParties SellInsightsFromData SellProducts
SellProductsToDataSubject ServiceOptimisation ServicePersonalisation ServiceProvision
ServiceRegistration ServiceUsageAnalytics SocialMediaMarketing TargetedAdvertising
TechnicalServiceProvision UserInterfacePersonalisation VendorManagement VendorPayment
VendorRecordsManagement VendorSelectionAssessment Verification
"""
PURPOSES = frozenset(_PURPOSE_TERMS.split())

#: GDPR Art. 6(1)(a)-(f), by the hub's name of the basis
LEGAL_BASES = {
    "consent": GDPR + "A6-1-a",
    "contract": GDPR + "A6-1-b",
    "legal_obligation": GDPR + "A6-1-c",
    "vital_interests": GDPR + "A6-1-d",
    "public_task": GDPR + "A6-1-e",
    "legitimate_interests": GDPR + "A6-1-f",
}


def purpose_term(value: str) -> str | None:
    """The DPV purpose term ``value`` names (``dpv:Term`` or its IRI), or None if none."""
    for prefix in ("dpv:", DPV):
        if value.startswith(prefix):
            term = value[len(prefix):]
            return term if term in PURPOSES else None
    return None


def purpose_iri(value: str | None) -> str | None:
    """The IRI of the DPV purpose term ``value`` names, or None."""
    term = purpose_term(value) if value else None
    return DPV + term if term else None

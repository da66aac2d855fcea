/* The demo shop reacts to the banner's answer, as a shop's own scripts would. */
document.addEventListener("privacyhub:consent", function () {
  document.querySelectorAll("#consent-status [data-category]").forEach(function (li) {
    var cat = li.getAttribute("data-category");
    var name = li.textContent.split(":")[0];
    li.textContent = name + ": " + (window.PrivacyHubConsent.allowed(cat) ? "on" : "off");
  });
});

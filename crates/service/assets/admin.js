// The status page's only script (served from 'self', so the CSP needs no 'unsafe-inline'):
// ask before a form that carries data-confirm is sent, e.g. "Replay all".
document.addEventListener("submit", function (ev) {
  var form = ev.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    ev.preventDefault();
  }
});

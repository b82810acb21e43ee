// The sign-in page works without script; this only puts the cursor where typing starts.
const name = document.getElementById("login-name");
if (name && !name.value) name.focus();
else document.getElementById("login-secret")?.focus();

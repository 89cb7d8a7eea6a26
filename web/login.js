// The login form: POST /api/login, then back to the page that sent us here (a path on this
// server only, never another site).

const form = document.getElementById('login');
const error = document.getElementById('error');

function next() {
  const target = new URLSearchParams(location.search).get('next') || '/';
  return target.startsWith('/') && !target.startsWith('//') ? target : '/';
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  error.hidden = true;
  const data = new FormData(form);
  const response = await fetch('/api/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: data.get('name'), password: data.get('password') }),
  });
  if (response.ok) {
    location.assign(next());
    return;
  }
  let reason = `${response.status}`;
  try { reason = (await response.json()).error || reason; } catch (_) { /* not JSON */ }
  error.textContent = reason;
  error.hidden = false;
});

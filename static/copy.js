// Progressive enhancement: show copy buttons only where the clipboard can be used.
document.querySelectorAll('button[data-copy]').forEach((button) => {
  const input = document.getElementById(button.dataset.copy);
  if (!input || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(input.value);
      button.textContent = 'Copied';
    } catch {
      input.select();
      button.textContent = 'Press Ctrl+C';
    }
    setTimeout(() => { button.textContent = 'Copy'; }, 2000);
  });
});
document.querySelectorAll('input[readonly]').forEach((input) => {
  input.addEventListener('focus', () => input.select());
});

// Progressive enhancement: show copy buttons only where the clipboard can be used, and say
// in the field's status line (role=status, read out by screen readers) what happened.
document.querySelectorAll('button[data-copy]').forEach((button) => {
  const input = document.getElementById(button.dataset.copy);
  if (!input || !navigator.clipboard) return;
  const status = document.getElementById(`${button.dataset.copy}-status`);
  const label = button.textContent;
  let timer;
  button.hidden = false;
  button.addEventListener('click', async () => {
    window.clearTimeout(timer);
    try {
      await navigator.clipboard.writeText(input.value);
      button.textContent = 'Copied';
      if (status) status.textContent = 'Copied to the clipboard.';
    } catch {
      input.focus();
      input.select();
      button.textContent = 'Press Ctrl+C';
      if (status) status.textContent = 'Not copied: the text is selected, press Ctrl+C (or ⌘C) to copy it.';
    }
    timer = window.setTimeout(() => {
      button.textContent = label;
      if (status) status.textContent = '';
    }, 4000);
  });
});
document.querySelectorAll('input[readonly]').forEach((input) => {
  input.addEventListener('focus', () => input.select());
});

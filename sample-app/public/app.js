// The sample page: pick a user, show their avatar through its signed URL, upload or delete
// one. Plain browser JavaScript talking to the app's JSON API; every failure is shown in words.
'use strict';

document.addEventListener('DOMContentLoaded', () => {
  const userForm = document.getElementById('user-form');
  const userInput = document.getElementById('user-id');
  const uploadForm = document.getElementById('upload-form');
  const fileInput = document.getElementById('avatar-file');
  const deleteButton = document.getElementById('delete');
  const directInput = document.getElementById('direct');
  const img = document.getElementById('avatar');
  const caption = document.getElementById('caption');
  const status = document.getElementById('status');
  const maxBytes = Number(uploadForm.dataset.maxBytes);

  const say = (text, kind) => {
    status.textContent = text;
    status.className = kind || '';
  };
  const userId = () => userInput.value.trim();
  const avatarPath = () => `/users/${encodeURIComponent(userId())}/avatar`;

  // The API answers errors as JSON { message }; anything else (a proxy's HTML page) gets a generic line.
  async function errorText(response) {
    try {
      const body = await response.json();
      if (body && typeof body.message === 'string') return body.message;
    } catch {
      // not JSON
    }
    return `The server answered ${response.status} ${response.statusText}.`;
  }

  function show(avatar) {
    img.hidden = false;
    img.dataset.key = avatar.key;
    img.src = avatar.url;
    caption.textContent = `Loading ${avatar.key}…`;
  }

  function clear(text) {
    img.hidden = true;
    img.removeAttribute('src');
    delete img.dataset.key;
    caption.textContent = text;
  }

  img.addEventListener('load', () => {
    caption.textContent = `${userId()}'s avatar (${img.naturalWidth}×${img.naturalHeight}), loaded from ${new URL(img.src).host}`;
  });
  img.addEventListener('error', () => {
    if (!img.getAttribute('src')) return;
    caption.textContent = '';
    say('The image could not be loaded from the storage: its URL may have expired or the storage is not reachable from this browser. Press "Show" to get a fresh URL.', 'error');
  });

  async function load() {
    if (!userInput.checkValidity()) {
      say('User ids are 1 to 64 letters, digits, "-" or "_".', 'error');
      return;
    }
    say('Loading…');
    try {
      const response = await fetch(`${avatarPath()}?format=json`, { headers: { Accept: 'application/json' } });
      if (response.status === 404) {
        clear(`${userId()} has no avatar yet.`);
        say('');
        return;
      }
      if (!response.ok) throw new Error(await errorText(response));
      show(await response.json());
      say('');
    } catch (error) {
      say(error instanceof TypeError ? 'Could not reach the app. Is it still running?' : error.message, 'error');
    }
  }

  userForm.addEventListener('submit', (event) => {
    event.preventDefault();
    void load();
  });

  uploadForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const file = fileInput.files && fileInput.files[0];
    if (!file) {
      say('Choose an image file first.', 'error');
      return;
    }
    // The server checks too; this only saves sending a file that is bound to be refused.
    if (file.size > maxBytes) {
      say(`That file is ${(file.size / 1048576).toFixed(1)} MiB; the limit is ${(maxBytes / 1048576).toFixed(1)} MiB. Choose a smaller image.`, 'error');
      return;
    }
    say('Uploading…');
    try {
      show(directInput.checked ? await uploadDirect(file) : await uploadThroughApp(file));
      say('Uploaded.', 'ok');
      uploadForm.reset();
    } catch (error) {
      say(error instanceof TypeError ? 'Could not reach the app. Is it still running?' : error.message, 'error');
    }
  });

  // Through the app: the app checks the bytes and stores them.
  async function uploadThroughApp(file) {
    const body = new FormData();
    body.append('avatar', file);
    const response = await fetch(avatarPath(), { method: 'POST', body });
    if (!response.ok) throw new Error(await errorText(response));
    return response.json();
  }

  // Straight to the bucket with a presigned POST: the S3 server enforces the size limit and
  // the type; the app then checks the bytes (and deletes a file that lied) before using it.
  async function uploadDirect(file) {
    const start = await fetch(`${avatarPath()}/direct`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ contentType: file.type }),
    });
    if (!start.ok) throw new Error(await errorText(start));
    const upload = await start.json();
    const form = new FormData();
    for (const [name, value] of Object.entries(upload.fields)) form.append(name, value);
    form.append('file', file); // the file must be the last field
    let stored;
    try {
      stored = await fetch(upload.url, { method: 'POST', body: form });
    } catch {
      throw new Error(`Could not reach the storage at ${new URL(upload.url).host} from this browser (is its CORS rule allowing this page?).`);
    }
    if (!stored.ok) {
      const text = await stored.text();
      const code = /<Code>([^<]+)<\/Code>/.exec(text);
      throw new Error(code && code[1] === 'EntityTooLarge' ? 'The storage refused the image: it is larger than the limit.' : `The storage refused the upload (${code ? code[1] : stored.status}).`);
    }
    const confirm = await fetch(`${avatarPath()}/direct/confirm`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: upload.name }),
    });
    if (!confirm.ok) throw new Error(await errorText(confirm));
    return confirm.json();
  }

  deleteButton.addEventListener('click', async () => {
    try {
      const response = await fetch(avatarPath(), { method: 'DELETE' });
      if (!response.ok) throw new Error(await errorText(response));
      clear(`${userId()} has no avatar yet.`);
      say('Deleted.', 'ok');
    } catch (error) {
      say(error instanceof TypeError ? 'Could not reach the app. Is it still running?' : error.message, 'error');
    }
  });

  void load();
});

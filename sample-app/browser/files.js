// The page's "Files" section: Uppy's Dashboard uploading straight to the bucket through the
// app's DirectUploadsModule routes (`/users/<id>/uploads/s3/…`, Companion's protocol), then
// the user's files listed with download links that go back through the app (Range support).
//
// Bundled from the npm packages by esbuild at build time (`npm run build:sample`) into
// dist/sample-app/public/files.js and files.css; nothing is fetched from a CDN.
import AwsS3 from '@uppy/aws-s3';
import Uppy from '@uppy/core';
import Dashboard from '@uppy/dashboard';
import '@uppy/core/css/style.min.css';
import '@uppy/dashboard/css/style.min.css';

const MIB = 1024 * 1024;
// Uppy's own default, written out because the page needs the same rule to know which uploads
// end with a presigned POST (and must be confirmed) and which with a multipart complete.
const MULTIPART_ABOVE = 100 * MIB;
const usesMultipart = (file) => (file.size || 0) > MULTIPART_ABOVE;

document.addEventListener('DOMContentLoaded', () => {
  const section = document.getElementById('files');
  if (!section) return;
  const userForm = document.getElementById('user-form');
  const userInput = document.getElementById('user-id');
  const list = document.getElementById('file-list');
  const status = document.getElementById('files-status');
  const maxBytes = Number(section.dataset.maxBytes);
  let uppy;
  let user;

  const say = (text, kind) => {
    status.textContent = text;
    status.className = kind || '';
  };
  const base = (id) => `/users/${encodeURIComponent(id)}`;

  async function errorText(response) {
    try {
      const body = await response.json();
      if (body && typeof body.message === 'string') return body.message;
    } catch {
      // not JSON
    }
    return `The server answered ${response.status} ${response.statusText}.`;
  }

  async function refresh() {
    const id = user;
    try {
      const response = await fetch(`${base(id)}/files`, { headers: { Accept: 'application/json' } });
      if (!response.ok) throw new Error(await errorText(response));
      const files = await response.json();
      if (id !== user) return;
      list.replaceChildren(
        ...files.map((file) => {
          const item = document.createElement('li');
          const link = document.createElement('a');
          link.href = `${base(id)}/files/${file.file.split('/').map(encodeURIComponent).join('/')}?download`;
          link.textContent = file.file;
          link.dataset.name = file.name;
          item.append(link, ` (${(file.size / MIB).toFixed(1)} MiB)`);
          return item;
        }),
      );
      if (files.length === 0) list.replaceChildren(Object.assign(document.createElement('li'), { textContent: `${id} has no files yet.` }));
    } catch (error) {
      say(error instanceof TypeError ? 'Could not reach the app. Is it still running?' : error.message, 'error');
    }
  }

  // A presigned POST has no complete call: the app publishes the file when the page confirms it.
  async function confirm(id, key) {
    const response = await fetch(`${base(id)}/uploads/s3/confirm`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ key }),
    });
    if (!response.ok) throw new Error(await errorText(response));
    return response.json();
  }

  function start(id) {
    if (uppy && id === user) return;
    uppy?.destroy();
    user = id;
    uppy = new Uppy({ id: 'files', restrictions: { maxFileSize: maxBytes }, meta: {} })
      .use(Dashboard, {
        target: '#uppy-dashboard',
        inline: true,
        height: 320,
        width: '100%',
        proudlyDisplayPoweredByUppy: false,
        note: `Any file up to ${(maxBytes / (1024 * MIB)).toFixed(maxBytes % (1024 * MIB) ? 1 : 0)} GiB, straight to the bucket; large files resume after a dropped connection.`,
      })
      // At most ~1,000 parts (5 MiB or more each): the complete call's list of parts then stays
      // well under Express's default 100 kB JSON body limit, whatever the file's size.
      .use(AwsS3, { companionEndpoint: `${base(id)}/uploads`, shouldUseMultipart: usesMultipart, getChunkSize: (file) => Math.max(5 * MIB, Math.ceil(file.size / 1000)) });
    const confirming = [];
    uppy.on('upload-success', (file, response) => {
      if (usesMultipart(file)) return;
      confirming.push(confirm(id, response.body.key).catch((error) => say(`${file.name}: ${error.message}`, 'error')));
    });
    uppy.on('upload-error', (file, error) => say(`${file ? file.name : 'Upload'}: ${error.message}. Press "Retry" to resume.`, 'error'));
    uppy.on('complete', async (result) => {
      await Promise.all(confirming.splice(0));
      if (result.successful && result.successful.length && !status.classList.contains('error')) say(`Uploaded ${result.successful.length} file(s).`, 'ok');
      void refresh();
    });
    window.filesUppy = uppy; // for the browser test and the curious
    void refresh();
  }

  const current = () => (userInput.checkValidity() ? userInput.value.trim() : undefined);
  userForm.addEventListener('submit', () => {
    const id = current();
    if (id) start(id);
  });
  const id = current();
  if (id) start(id);
});

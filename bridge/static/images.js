// Bridge: the image catalog. Everyone sees the images tenants may deploy on
// the process runtime and the command each runs; platform admins
// (images:write) add, replace and remove them.
'use strict';

// imagePath is the API path of one image: its slashes stay path separators.
const imagePath = ref => '/images/' + ref.split('/').map(enc).join('/');

async function imagesPage(view) {
  setPage('Images', [['Images', '#/images']]);
  const [me, list] = await Promise.all([who(), api('GET', '/images', undefined, view.signal)]);
  showWho(me);
  const can = me.can['images:write'];
  const form = can && imageForm();
  const rows = list.images.map(i => h('tr', { 'data-image': i.image },
    h('th', { scope: 'row', 'data-label': 'Image' }, h('code', null, i.image)),
    h('td', { 'data-label': 'Command', class: 'what' }, h('code', { title: i.command.join(' ') }, i.command.join(' '))),
    h('td', { 'data-label': 'Description' }, i.description || h('span', { class: 'muted' }, '–')),
    h('td', { 'data-label': 'Updated' }, h('span', { 'data-age': i.updated_at }, age(i.updated_at)), ' ago'),
    can && h('td', { 'data-label': 'Actions', class: 'actions' },
      h('button', { type: 'button', class: 'secondary', 'data-action': 'edit-image', onclick: () => form.edit(i) }, 'Edit'),
      h('button', { type: 'button', class: 'danger', 'data-action': 'delete-image', onclick: ev => removeImage(ev.currentTarget, i.image) }, 'Remove'))));
  const table = rows.length ? h('div', { class: 'scroll' }, h('table', { class: 'list images' }, h('caption', { class: 'sr-only' }, 'The image catalog'),
    h('thead', null, h('tr', null, ['Image', 'Command', 'Description', 'Updated', can && 'Actions'].filter(Boolean).map(c => h('th', { scope: 'col' }, c)))),
    h('tbody', null, rows)))
    : h('p', { class: 'muted', id: 'no-images' }, can ? 'The catalog is empty: add the first image below.' : 'The catalog is empty: a platform admin adds images.');
  show(h('h1', null, 'Images'),
    h('p', { class: 'muted' }, 'What tenants deploy on the process runtime: each image runs the command a platform admin gave it. ' +
      'Deploying a raw command instead is a platform admin\'s right, or a tenant\'s an admin trusts.'),
    table, form);
}

// imageForm adds an image or replaces one (PUT is both); edit(img) fills it
// with an entry to change.
function imageForm() {
  const form = h('form', { id: 'image-form', class: 'card' }, h('h2', { id: 'image-form-title' }, 'Add an image'),
    h('div', { class: 'fields' },
      field('Image', 'ref', { required: true, placeholder: 'example/arena:0.2', maxlength: 256, 'aria-describedby': 'f-ref-hint' },
        'A reference: lower-case path, optional :tag.'),
      field('Command', 'image_command', { required: true, placeholder: '/srv/bin/arena --verbose', 'aria-describedby': 'f-image_command-hint' },
        'An absolute program path and its arguments, separated by spaces.'),
      field('Description', 'description', { maxlength: 512, placeholder: 'The arena server, v0.2' })),
    h('button', { type: 'submit', id: 'image-btn' }, 'Save image'));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const v = formValues(form);
    const ref = v.ref.trim();
    const body = { command: v.image_command.trim().split(/\s+/).filter(Boolean), description: v.description.trim() };
    const out = await busy($('#image-btn'), () => api('PUT', imagePath(ref), body), img => `Image ${img.image} saved: it runs ${img.command.join(' ')}.`);
    if (out) route();
  });
  form.edit = img => {
    form.elements.ref.value = img.image;
    form.elements.image_command.value = img.command.join(' ');
    form.elements.description.value = img.description || '';
    $('#image-form-title').textContent = 'Replace ' + img.image;
    form.scrollIntoView({ block: 'nearest' });
    form.elements.image_command.focus();
  };
  return form;
}

async function removeImage(button, ref) {
  if (!await confirmAction(`Remove ${ref}?`, 'Tenants can no longer deploy it. Revisions deployed from it keep running.', 'Remove')) return;
  if (await busy(button, () => api('DELETE', imagePath(ref)).then(() => true), () => `Image ${ref} removed from the catalog.`)) route();
}

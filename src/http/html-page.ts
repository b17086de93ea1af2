// Small HTML pages for people in a browser (the OAuth callback). Every value
// is escaped; the pages load nothing from elsewhere.

export interface PageContent {
  title: string;
  message: string;
  link?: { href: string; text: string };
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

export function htmlPage(content: PageContent): string {
  const link = content.link ? `\n<p><a href="${escapeHtml(content.link.href)}">${escapeHtml(content.link.text)}</a></p>` : '';
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(content.title)} - rwgps-sync</title></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 3em auto; padding: 0 1em">
<h1>${escapeHtml(content.title)}</h1>
<p>${escapeHtml(content.message)}</p>${link}
</body>
</html>
`;
}

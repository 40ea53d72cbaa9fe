// The files a message carries: name, type and size as the sender gave
// them, a download, and a preview of pictures. Every file is downloaded
// as ciphertext, decrypted here and checked against the SHA-256 its
// message names before anything shows or saves it; what does not match
// is refused. Decrypted bytes live only in a blob: URL while they are
// shown or saved, revoked when no longer needed, and are never stored.

import { useEffect, useRef, useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText } from '../components/Bits';
import { sizeText } from './bits';
import type { AttachmentView, Messenger } from './model';

/**
 * The picture types previewed in the page (decoded by the browser as an
 * image, never as a document: no SVG, which can hold script).
 */
const PREVIEWED = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
/** Larger pictures are not fetched just to be previewed. */
const PREVIEW_MAX_BYTES = 10 * 1024 * 1024;
/** How long a download's blob: URL lives: the browser reads it when the download starts. */
const DOWNLOAD_URL_MS = 30_000;

interface Props {
  messenger: Messenger;
  threadId: string;
  seq: number;
  attachments: AttachmentView[];
}

/** The id of the element naming a file (its name, type and size), for what describes itself by it. */
export function attachmentLabelId(seq: number, attachmentId: string): string {
  return `attachment-${seq}-${attachmentId}`;
}

export function AttachmentList({ messenger, threadId, seq, attachments }: Props) {
  if (attachments.length === 0) {
    return null;
  }
  return (
    <ul class="attachments" aria-label={attachments.length === 1 ? 'Attached file' : 'Attached files'}>
      {attachments.map((file) => (
        <AttachmentItem key={file.id} messenger={messenger} threadId={threadId} seq={seq} file={file} />
      ))}
    </ul>
  );
}

function AttachmentItem({ messenger, threadId, seq, file }: { messenger: Messenger; threadId: string; seq: number; file: AttachmentView }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const urls = useRef<string[]>([]);
  const describedBy = attachmentLabelId(seq, file.id);

  // Whatever is left of the downloads' URLs goes with the message.
  useEffect(
    () => () => {
      for (const url of urls.current) {
        URL.revokeObjectURL(url);
      }
    },
    [],
  );

  const download = async () => {
    setBusy(true);
    setError(null);
    try {
      const bytes = await messenger.openAttachment(threadId, seq, file.id);
      // Typed as bytes whatever the sender said: saved, never opened as a page of this origin.
      const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
      urls.current.push(url);
      const link = document.createElement('a');
      link.href = url;
      link.download = file.name;
      link.rel = 'noopener';
      link.click();
      setTimeout(() => {
        URL.revokeObjectURL(url);
        urls.current = urls.current.filter((kept) => kept !== url);
      }, DOWNLOAD_URL_MS);
    } catch (caught) {
      setError(`Not downloaded: ${api.messageOf(caught)}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <li class="attachment">
      {PREVIEWED.has(file.mediaType) && file.size <= PREVIEW_MAX_BYTES && (
        <Preview messenger={messenger} threadId={threadId} seq={seq} file={file} />
      )}
      <span id={describedBy}>
        <span class="file-name">{file.name}</span>{' '}
        <span class="muted">
          ({file.mediaType}, {sizeText(file.size)})
        </span>
      </span>
      <button type="button" class="secondary small" aria-describedby={describedBy} disabled={busy} aria-busy={busy} onClick={() => void download()}>
        Download
      </button>
      <ErrorText error={error} />
    </li>
  );
}

/** A picture, decrypted and checked, shown from a blob: URL that is revoked when it goes. */
function Preview({ messenger, threadId, seq, file }: { messenger: Messenger; threadId: string; seq: number; file: AttachmentView }) {
  const [url, setUrl] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let made: string | null = null;
    let gone = false;
    setUrl(null);
    setError(null);
    messenger.openAttachment(threadId, seq, file.id).then(
      (bytes) => {
        if (!gone) {
          made = URL.createObjectURL(new Blob([bytes], { type: file.mediaType }));
          setUrl(made);
        }
      },
      (caught: unknown) => {
        if (!gone) {
          setError(api.messageOf(caught));
        }
      },
    );
    return () => {
      gone = true;
      if (made !== null) {
        URL.revokeObjectURL(made);
      }
    };
  }, [messenger, threadId, seq, file.id, file.mediaType]);

  if (error !== null) {
    return <p class="muted attachment-note">No preview: {error}</p>;
  }
  if (url === null) {
    return (
      <p class="muted attachment-note" aria-busy="true">
        Loading the preview…
      </p>
    );
  }
  return (
    <div class="attachment-figure">
      <img class="attachment-preview" src={url} alt={`Preview of ${file.name}`} />
    </div>
  );
}

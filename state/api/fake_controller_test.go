package api

import (
	"context"
	"time"

	"github.com/cdcd-dev/cdcd/state"
)

// fakeController is a Controller whose methods are its function fields. A
// nil field answers as a daemon with no clusters: ResourceNotFoundException
// for single streams and nothing for lists.
type fakeController struct {
	createStream func(ctx context.Context, req CreateRequest) (StreamView, error)
	getStream    func(ctx context.Context, clusterID, streamID string) (StreamView, error)
	listStreams  func(ctx context.Context, clusterID string) ([]StreamView, error)
	deleteStream func(ctx context.Context, clusterID, streamID, clientToken string) (StreamView, error)
	streams      func(ctx context.Context) ([]StreamView, error)
}

var _ Controller = (*fakeController)(nil)

func (c *fakeController) CreateStream(ctx context.Context, req CreateRequest) (StreamView, error) {
	if c.createStream == nil {
		return StreamView{}, &NotFoundError{Type: "cluster", ID: req.ClusterID}
	}
	return c.createStream(ctx, req)
}

func (c *fakeController) GetStream(ctx context.Context, clusterID, streamID string) (StreamView, error) {
	if c.getStream == nil {
		return StreamView{}, &NotFoundError{Type: "stream", ID: streamID}
	}
	return c.getStream(ctx, clusterID, streamID)
}

func (c *fakeController) ListStreams(ctx context.Context, clusterID string) ([]StreamView, error) {
	if c.listStreams == nil {
		return nil, nil
	}
	return c.listStreams(ctx, clusterID)
}

func (c *fakeController) DeleteStream(ctx context.Context, clusterID, streamID, clientToken string) (StreamView, error) {
	if c.deleteStream == nil {
		return StreamView{}, &NotFoundError{Type: "stream", ID: streamID}
	}
	return c.deleteStream(ctx, clusterID, streamID, clientToken)
}

func (c *fakeController) Streams(ctx context.Context) ([]StreamView, error) {
	if c.streams == nil {
		return nil, nil
	}
	return c.streams(ctx)
}

// view is a stream as a Controller would return it.
func view(clusterID, streamID string, created time.Time, status state.Status) StreamView {
	var v StreamView
	v.Version = state.FileVersion
	v.Definition = state.Definition{
		ClusterID: clusterID, StreamID: streamID,
		ARN:    "arn:aws:dsql:us-east-1:123456789012:cluster/" + clusterID + "/stream/" + streamID,
		Format: "JSON", Ordering: "UNORDERED", CreationTime: created,
		Target: state.Target{
			StreamARN: "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
			RoleARN:   "arn:aws:iam::123456789012:role/cdcd",
		},
	}
	v.Status = status
	return v
}

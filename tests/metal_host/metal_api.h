// The subset of Foundation and Metal that csrc/metal/*.mm calls, declared
// from Apple's documentation and SDK headers (selectors, types, nullability
// and ownership attributes as published), so that the Objective-C++ layer can
// be syntax-checked on Linux with clang (tests/metal_host/check.sh). A wrong
// selector, argument label, type, nullability or ARC mistake in a .mm file
// fails that check. Add a declaration here when the .mm files start using it,
// transcribed from developer.apple.com or the SDK header, never invented.
//
// What this check can NOT prove (only a Mac can; see README "On a Mac"):
// - linking: that the frameworks are linked and the symbols exist (e.g. that
//   MTLCreateSystemDefaultDevice returns a device in a command-line process);
// - availability: API_AVAILABLE is defined away, so a call newer than the
//   deployment target (macOS 14.0) is not caught;
// - runtime behaviour: the GNUstep runtime stands in for Apple's, and nothing
//   here runs; device families, limits, hazard tracking, command-buffer
//   ordering and page sizes are Apple's facts, not checked ones;
// - the shaders: Apple's Metal compiler rules (the strict simulator front-end
//   and the macOS CI job's `xcrun metal` cover those);
// - the exact header text: where the SDK differs from this transcription
//   (macros, extra overloads), the real build is the judge.
// BOOL is modelled as on arm64 (bool, objc.h's OBJC_BOOL_IS_BOOL), the only
// architecture qmetal's Metal backend targets; x86_64 macOS uses signed char.
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef unsigned long NSUInteger;
typedef long NSInteger;
typedef bool BOOL;
#define YES true
#define NO false
#define nil nullptr
#define NS_ENUM(type, name) enum name : type name; enum name : type
#define NS_OPTIONS(type, name) NS_ENUM(type, name)
#define API_AVAILABLE(...)
#define NS_RETURNS_RETAINED __attribute__((ns_returns_retained))

// Apple's headers assume non-null pointers unless marked (NS_ASSUME_NONNULL).
#pragma clang assume_nonnull begin

// --- Foundation ------------------------------------------------------------------

@protocol NSObject
@end

__attribute__((objc_root_class))
@interface NSObject <NSObject> {
  void* isa;
}
+ (instancetype)alloc;
+ (instancetype)new;
- (instancetype)init;
@end

@interface NSString : NSObject
+ (nullable instancetype)stringWithUTF8String:(const char*)nullTerminatedCString;
@property(nullable, readonly) const char* UTF8String;
@end

@interface NSError : NSObject
@property(readonly, copy) NSString* _Nonnull localizedDescription;
@end

@interface NSURL : NSObject
+ (NSURL* _Nonnull)fileURLWithPath:(NSString* _Nonnull)path;
@end

@interface NSArray<ObjectType> : NSObject
@property(readonly) NSUInteger count;
- (ObjectType _Nonnull)objectAtIndex:(NSUInteger)index;
@end

typedef struct {
  NSInteger majorVersion;
  NSInteger minorVersion;
  NSInteger patchVersion;
} NSOperatingSystemVersion;

@interface NSProcessInfo : NSObject
@property(class, readonly, strong) NSProcessInfo* _Nonnull processInfo;
- (BOOL)isOperatingSystemAtLeastVersion:(NSOperatingSystemVersion)version;
@end

// --- Metal ------------------------------------------------------------------------

typedef struct {
  NSUInteger width, height, depth;
} MTLSize;

static inline MTLSize MTLSizeMake(NSUInteger width, NSUInteger height, NSUInteger depth) {
  MTLSize size = {width, height, depth};
  return size;
}

typedef NS_ENUM(NSInteger, MTLGPUFamily){
    MTLGPUFamilyApple7 = 1007,
    MTLGPUFamilyApple8 = 1008,
    MTLGPUFamilyApple9 = 1009,
    MTLGPUFamilyMetal3 = 5001,
    // macOS 26 SDK: Apple10 is M5 / A19 (the first GPUs with matrix units for
    // Metal 4's tensor operations), Metal4 the Metal 4 feature set.
    MTLGPUFamilyApple10 API_AVAILABLE(macos(26.0)) = 1010,
    MTLGPUFamilyMetal4 API_AVAILABLE(macos(26.0)) = 5002,
};

typedef NS_OPTIONS(NSUInteger, MTLResourceOptions){
    MTLResourceCPUCacheModeDefaultCache = 0,
    MTLResourceStorageModeShared = 0 << 4,
    MTLResourceHazardTrackingModeDefault = 0 << 8,
    MTLResourceHazardTrackingModeUntracked = 1 << 8,
};

typedef NS_ENUM(NSUInteger, MTLDataType){
    MTLDataTypeInt = 29,
    MTLDataTypeUInt = 33,
    MTLDataTypeHalf = 16,
    MTLDataTypeFloat = 3,
    MTLDataTypeBool = 53,
    MTLDataTypeBFloat = 121,
};

typedef NS_OPTIONS(NSUInteger, MTLBarrierScope){
    MTLBarrierScopeBuffers = 1 << 0,
};

typedef NS_ENUM(NSUInteger, MTLDispatchType){
    MTLDispatchTypeSerial,
    MTLDispatchTypeConcurrent,
};

typedef NS_ENUM(NSUInteger, MTLCommandBufferStatus){
    MTLCommandBufferStatusNotEnqueued = 0,
    MTLCommandBufferStatusEnqueued = 1,
    MTLCommandBufferStatusCommitted = 2,
    MTLCommandBufferStatusScheduled = 3,
    MTLCommandBufferStatusCompleted = 4,
    MTLCommandBufferStatusError = 5,
};

@protocol MTLDevice;
@protocol MTLFunction;

@protocol MTLEvent <NSObject>
@property(nullable, readonly) id<MTLDevice> device;
@end

@protocol MTLSharedEvent <MTLEvent>
@property(readwrite) uint64_t signaledValue;
@end

@interface MTLArchitecture : NSObject
@property(readonly) NSString* _Nonnull name;
@end

@protocol MTLResource <NSObject>
@property(readonly) id<MTLDevice> _Nonnull device;
@end

@protocol MTLBuffer <MTLResource>
@property(readonly) NSUInteger length;
- (void* _Nonnull)contents;
@end

@interface MTLFunctionConstantValues : NSObject
- (void)setConstantValue:(const void* _Nonnull)value type:(MTLDataType)type atIndex:(NSUInteger)index;
@end

@protocol MTLFunction <NSObject>
@property(readonly) NSString* _Nonnull name;
@end

@protocol MTLLibrary <NSObject>
- (nullable id<MTLFunction>)newFunctionWithName:(NSString* _Nonnull)functionName;
- (nullable id<MTLFunction>)newFunctionWithName:(NSString* _Nonnull)name
                                  constantValues:(MTLFunctionConstantValues* _Nonnull)constantValues
                                           error:(__autoreleasing NSError* _Nullable* _Nullable)error;
@property(readonly) NSArray<NSString*>* _Nonnull functionNames;
@end

@protocol MTLComputePipelineState <NSObject>
@property(readonly) NSUInteger maxTotalThreadsPerThreadgroup;
@property(readonly) NSUInteger threadExecutionWidth;
@property(readonly) NSUInteger staticThreadgroupMemoryLength;
@end

@protocol MTLCommandEncoder <NSObject>
- (void)endEncoding;
@end

@protocol MTLComputeCommandEncoder <MTLCommandEncoder>
- (void)setComputePipelineState:(id<MTLComputePipelineState> _Nonnull)state;
- (void)setBytes:(const void* _Nonnull)bytes length:(NSUInteger)length atIndex:(NSUInteger)index;
- (void)setBuffer:(nullable id<MTLBuffer>)buffer offset:(NSUInteger)offset atIndex:(NSUInteger)index;
- (void)setThreadgroupMemoryLength:(NSUInteger)length atIndex:(NSUInteger)index;
- (void)dispatchThreadgroups:(MTLSize)threadgroupsPerGrid threadsPerThreadgroup:(MTLSize)threadsPerThreadgroup;
- (void)memoryBarrierWithScope:(MTLBarrierScope)scope;
@end

@protocol MTLCommandBuffer;
typedef void (^MTLCommandBufferHandler)(id<MTLCommandBuffer> _Nonnull);

@protocol MTLCommandBuffer <NSObject>
- (nullable id<MTLComputeCommandEncoder>)computeCommandEncoder;
- (nullable id<MTLComputeCommandEncoder>)computeCommandEncoderWithDispatchType:(MTLDispatchType)dispatchType;
- (void)commit;
- (void)waitUntilCompleted;
- (void)addCompletedHandler:(MTLCommandBufferHandler _Nonnull)block;
- (void)encodeWaitForEvent:(id<MTLEvent> _Nonnull)event value:(uint64_t)value;
- (void)encodeSignalEvent:(id<MTLEvent> _Nonnull)event value:(uint64_t)value;
@property(readonly) MTLCommandBufferStatus status;
@property(nullable, readonly) NSError* error;
@end

@protocol MTLCommandQueue <NSObject>
- (nullable id<MTLCommandBuffer>)commandBuffer;
@end

@protocol MTLDevice <NSObject>
@property(readonly) NSString* _Nonnull name;
@property(readonly) MTLArchitecture* _Nonnull architecture API_AVAILABLE(macos(14.0));
@property(readonly) NSUInteger maxThreadgroupMemoryLength;
@property(readonly) NSUInteger maxBufferLength;
@property(readonly) uint64_t recommendedMaxWorkingSetSize;
@property(readonly) BOOL hasUnifiedMemory;
@property(readonly) MTLSize maxThreadsPerThreadgroup;
- (BOOL)supportsFamily:(MTLGPUFamily)gpuFamily;
- (nullable id<MTLBuffer>)newBufferWithLength:(NSUInteger)length options:(MTLResourceOptions)options;
- (nullable id<MTLBuffer>)newBufferWithBytesNoCopy:(void* _Nonnull)pointer
                                            length:(NSUInteger)length
                                           options:(MTLResourceOptions)options
                                       deallocator:(void (^_Nullable)(void* _Nonnull pointer, NSUInteger length))deallocator;
- (nullable id<MTLLibrary>)newLibraryWithURL:(NSURL* _Nonnull)url
                                       error:(__autoreleasing NSError* _Nullable* _Nullable)error;
- (nullable id<MTLComputePipelineState>)newComputePipelineStateWithFunction:(id<MTLFunction> _Nonnull)computeFunction
                                                                      error:(__autoreleasing NSError* _Nullable* _Nullable)error;
- (nullable id<MTLCommandQueue>)newCommandQueue;
- (nullable id<MTLSharedEvent>)newSharedEvent;
@end

// MTLDevice.h: both return a +1 reference (NS_RETURNS_RETAINED), which ARC
// balances; MTLCopyAllDevices is macOS-only and never switches GPUs.
extern "C" id<MTLDevice> _Nullable MTLCreateSystemDefaultDevice(void) NS_RETURNS_RETAINED;
extern "C" NSArray<id<MTLDevice>>* _Nonnull MTLCopyAllDevices(void) NS_RETURNS_RETAINED;

#pragma clang assume_nonnull end
